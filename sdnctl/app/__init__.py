"""The os-ken app the daemon runs (OpenFlow 1.3): `controller.ControllerApp`, with
its replica roles (`replica`) and its observers (`observe`). Imports os-ken: only
the daemon loads it."""
