"""Send raw Ethernet frames out of one interface: `python -m sdnctl.lab.rawsend IFACE
REPEAT RATE` with one frame in hex per stdin line. Each frame goes REPEAT times (the
first through the OVS upcall path, the rest through its flow cache); RATE frames per
second at most (0: as fast as it goes). Prints {"sent", "refused", "seconds"} as JSON.

Standard library only: runs inside a lab host, as the hostile VM or the internet.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def main(argv: list[str]) -> int:
    iface, repeat, rate = argv[0], int(argv[1]), float(argv[2])
    frames = [bytes.fromhex(line.strip()) for line in sys.stdin if line.strip()]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sent = refused = 0
    started = time.monotonic()
    gap = 1.0 / rate if rate > 0 else 0.0
    for _ in range(repeat):
        for frame in frames:
            try:
                sock.send(frame)
                sent += 1
            except OSError:
                refused += 1
            if gap:
                time.sleep(max(0.0, started + (sent + refused) * gap - time.monotonic()))
    print(json.dumps({"sent": sent, "refused": refused,
                      "seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
