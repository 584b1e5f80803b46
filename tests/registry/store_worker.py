"""A separate process for the store's concurrency tests: ``open`` or ``write N TAG``.

Every worker waits until the same wall-clock moment (argv[2]) so that they really collide.
"""

import sys
import time

from amploop.registry import Store


def main() -> None:
    mode, start_at = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, start_at - time.time()))
    with Store.open() as store:
        if mode == "open":
            print(store.info().schema_revision)
        elif mode == "write":
            count, tag = int(sys.argv[3]), sys.argv[4]
            for i in range(count):
                store.append_audit("test.write", f"{tag}:{i}", actor=tag)
            print(count)
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
