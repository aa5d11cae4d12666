"""Exercise 2: delete an uploaded temporary file, then log "cleanup complete".

The two tasks are added in that order, so afterward stores them as one chain: the log task
does not start until the deletion has succeeded (if the deletion fails and is retried, the
log line waits for it). ``remove_temp_file`` logs what it removed too, so ``cleanup.log``
shows the order.

Run it from the repository root::

    uvicorn examples.cleanup:app
    curl -X POST 'localhost:8000/uploads?filename=notes.txt' --data-binary 'hello'
    cat cleanup.log
"""

import os
import tempfile

from fastapi import FastAPI, Request

from afterward.fastapi import BackgroundTasks

CLEANUP_LOG = "cleanup.log"

app = FastAPI()


def write_log(message: str) -> None:
    with open(CLEANUP_LOG, "a") as log:
        log.write(message + "\n")


def remove_temp_file(path: str) -> None:
    os.remove(path)
    write_log(f"removed {path}")


def count_lines(path: str) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


@app.post("/uploads")
async def upload(
    request: Request, background_tasks: BackgroundTasks, filename: str = "upload.bin"
) -> dict[str, object]:
    fd, path = tempfile.mkstemp(prefix="upload-", suffix=f"-{os.path.basename(filename)}")
    with os.fdopen(fd, "wb") as temp:
        temp.write(await request.body())
    lines = count_lines(path)  # the work the upload is for, done inline
    background_tasks.add_task(remove_temp_file, path)
    background_tasks.add_task(write_log, "cleanup complete")
    return {"filename": filename, "lines": lines, "temp_path": path}
