"""A separate process for registry concurrency tests.

register SYNC_DIR INDEX COUNT NAME        register COUNT versions of NAME; print their numbers
promote SYNC_DIR INDEX NAME VERSION...    promote each VERSION to champion, in order
promote-forever NAME                      promote versions 1..3 and roll back, round and round, until killed

The first two are started by ``tests.conftest.run_together``: every worker waits at one barrier
until all are ready and logs when its critical section begins and ends (``worker_sync``).
"""

import sys

from worker_sync import inside, wait_for_all

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
        sync_dir, index = sys.argv[2], sys.argv[3]
        if mode == "register":
            count, name = int(sys.argv[4]), sys.argv[5]
            wait_for_all(sync_dir)
            with inside(sync_dir, index):
                versions = [
                    store.register_model_version(name, {"weights.bin": f"{name}-{i}".encode()}).version
                    for i in range(count)
                ]
            print(" ".join(map(str, versions)))
        elif mode == "promote":
            name = sys.argv[4]
            wait_for_all(sync_dir)
            with inside(sync_dir, index):
                for version in sys.argv[5:]:
                    promote(store, name, int(version), reason=f"worker promotes {version}")
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
