"""Rendering: Rich tables, JSON and Mermaid, handed their data by :mod:`l4kit.commands`.

* :mod:`~l4kit.views.layout`: :class:`~l4kit.views.layout.FittedTable`, tables that fit
  the terminal without cutting a cell, for every table l4kit prints;
* :mod:`~l4kit.views.transitions`: the flag-transition table ``respond``, ``replay`` and
  the notebooks share, built from :mod:`l4kit.drivers.transitions`' rows;
* :mod:`~l4kit.views.live` (``respond``'s tables and exit summary, drawn by a paced
  renderer thread), :mod:`~l4kit.views.replay`, :mod:`~l4kit.views.client` (``connect``
  and ``liveplay``), :mod:`~l4kit.views.drill`, :mod:`~l4kit.views.demo`,
  :mod:`~l4kit.views.host` (``cleanup`` and ``doctor``) and :mod:`~l4kit.views.notebook`.

A view only renders: running the drivers (processes, subprocesses, the garbage
collector, the host's state) is the commands' work, and import-linter keeps the
drivers' process machinery out of this package.
"""
