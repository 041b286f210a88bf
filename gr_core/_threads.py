"""Make torch's worker threads wait passively; imported before torch by ``gr_core``.

A training step here is hundreds of small operations. With OpenMP's default
active waiting, each of torch's threads spins between operations; when another
busy process shares the machine (a second training, a test run, another
dashboard session's work), the spinning threads and that process take turns
on the cores and every small operation waits for a time slice: measured on
two cores, a stacked retraining fell from 1,475 to 37 steps per second. Passive
waiting costs nothing measurable when the machine is idle. The setting must be
in the environment before torch loads its OpenMP runtime; a value the user set
is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
