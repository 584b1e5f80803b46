"""A separate process for registry concurrency tests.

register START_AT COUNT NAME          register COUNT versions of NAME
promote START_AT NAME VERSION...      promote each VERSION to champion, in order
promote-forever NAME                  promote versions 1..3 and roll back, round and round, until killed
"""

import sys
import time

from amploop.registry import Store
from amploop.registry.aliases import promote, rollback


def main() -> None:
    mode = sys.argv[1]
    with Store.open() as store:
        if mode == "promote-forever":
            name = sys.argv[2]
            print("ready", flush=True)
            i = 0
            while True:
                promote(store, name, i % 3 + 1, reason=f"round {i}")
                if i % 2:
                    rollback(store, name, reason=f"round {i}")
                i += 1
        start_at = float(sys.argv[2])
        time.sleep(max(0.0, start_at - time.time()))
        if mode == "register":
            count, name = int(sys.argv[3]), sys.argv[4]
            for i in range(count):
                store.register_model_version(name, {"weights.bin": f"{name}-{i}".encode()})
        elif mode == "promote":
            name = sys.argv[3]
            for version in sys.argv[4:]:
                promote(store, name, int(version), reason=f"worker promotes {version}")
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
