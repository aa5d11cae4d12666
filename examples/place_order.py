"""Exercise 1: charge the card inline, audit and email in the background.

Charging the card shapes the answer (a declined card means no order), so it runs inside
the request: a declined card is a 402, and since the endpoint raises, afterward stores no
task at all. The audit line and the confirmation email do not change the answer, so they
are background tasks, stored as one chain before the 200 goes out and run in that order
(audit first). Both tasks append to files in the working directory, so they work the same
whether the web process runs them (the default) or an ``afterward worker`` process does.

Run it from the repository root::

    uvicorn examples.place_order:app
    curl -X POST localhost:8000/orders -H 'content-type: application/json' \\
         -d '{"email": "ada@example.com", "card": "4242424242424242", "amount_cents": 1999}'
    cat audit.log outbox.txt

A card ending in 0002 is declined (402, nothing stored, nothing written).
"""

import secrets

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from afterward.fastapi import BackgroundTasks

AUDIT_LOG = "audit.log"
OUTBOX = "outbox.txt"

app = FastAPI()


class Order(BaseModel):
    email: str
    card: str
    amount_cents: int


class CardDeclined(Exception):
    """The payment provider refused the charge."""


def charge_card(card: str, amount_cents: int) -> str:
    """A fake payment provider: cards ending in 0002 are declined; returns a charge id."""
    if card.endswith("0002"):
        raise CardDeclined(f"card ending in {card[-4:]} was declined")
    return f"ch_{secrets.token_hex(6)}"


def write_audit(line: str) -> None:
    with open(AUDIT_LOG, "a") as log:
        log.write(line + "\n")


def send_confirmation(email: str, order_id: str, amount_cents: int) -> None:
    with open(OUTBOX, "a") as outbox:
        outbox.write(f"to {email}: order {order_id} confirmed, {amount_cents / 100:.2f} charged\n")


@app.post("/orders")
def place_order(order: Order, background_tasks: BackgroundTasks) -> dict[str, str]:
    # (a) inline: if the charge fails, the order failed, and the caller must hear it.
    try:
        charge_id = charge_card(order.card, order.amount_cents)
    except CardDeclined as exc:
        raise HTTPException(status_code=402, detail=str(exc)) from None
    order_id = f"ord_{secrets.token_hex(4)}"
    # (b) and (c): side-effects, run after the response, audit first.
    background_tasks.add_task(write_audit, f"order {order_id} placed, charge {charge_id}")
    background_tasks.add_task(send_confirmation, order.email, order_id, order.amount_cents)
    return {"status": "placed", "order_id": order_id, "charge_id": charge_id}
