"""Running scripts: the event loop every target shares (:mod:`~l4kit.drill.run.loop`),
the settings of a run (:mod:`~l4kit.drill.run.settings`) and the targets: the Linux
kernel (:mod:`~l4kit.drill.run.kernel`, with its system calls in
:mod:`~l4kit.drill.run.syscalls`)."""
