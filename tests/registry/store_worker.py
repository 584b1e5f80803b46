"""A separate process for the store's concurrency tests: ``open SYNC_DIR INDEX`` or ``write SYNC_DIR INDEX N TAG``.

Started by ``tests.conftest.run_together``: every worker waits at one barrier until all are ready
and logs when its critical section begins and ends (``worker_sync``), so the test can check that
they really collided.
"""

import sys

from worker_sync import inside, wait_for_all

from amploop.registry import Store


def main() -> None:
    mode, sync_dir, index = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "open":  # the collision under test is opening (and migrating) a fresh store
        wait_for_all(sync_dir)
        with inside(sync_dir, index), Store.open() as store:
            revision = store.info().schema_revision
        print(revision)
    elif mode == "write":  # the collision under test is the writes: open first
        count, tag = int(sys.argv[4]), sys.argv[5]
        with Store.open() as store:
            wait_for_all(sync_dir)
            with inside(sync_dir, index):
                for i in range(count):
                    store.append_audit("test.write", f"{tag}:{i}", actor=tag)
        print(count)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
