"""How the jobs in ``scans/`` end: bad input is one line on stderr and exit status 2, never a traceback.

A job refuses inputs it cannot honour before computing (an unknown study, a results folder holding a scan
computed for other inputs, a malformed preset) by raising :class:`cevns_jax.errors.CevnsInputError`, whose
message names the file, table or field and says how to proceed. :func:`run_job` prints it as
``<job>: error: <message>`` (the convention of ``argparse`` and of the ``cevns`` command line).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from cevns_jax.errors import CevnsInputError


def run_job(main: Callable[[], object]) -> None:
    """Run a job's ``main()``; a :class:`CevnsInputError` exits with status 2 and its message on one line."""
    try:
        main()
    except CevnsInputError as err:
        print(f"{Path(sys.argv[0]).name}: error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from None
