"""What `add_task` makes of a call: a stored name for the callable (`naming`), its
arguments as JSON (`serialization`, and `typed_json` where annotations cannot restore
their types), the check that they come back exactly (`roundtrip`), and, for a call that
cannot be stored, its run in memory in its place in the chain (`in_memory`). `preparer`
puts them together for `Afterward`."""
