"""Running scripts: the event loop every target shares (:mod:`~l4kit.drill.run.loop`),
the settings of a run (:mod:`~l4kit.drill.run.settings`) and the targets: the Linux
kernel (:mod:`~l4kit.drill.run.kernel`, with its system calls in
:mod:`~l4kit.drill.run.syscalls`, made through the C library as
:mod:`~l4kit.drill.run.libc` makes them, and ``struct tcp_info`` read by
:mod:`~l4kit.drill.run.tcpinfo`), and l4kit's own core on a virtual clock
(:mod:`~l4kit.drill.run.virtual`)."""
