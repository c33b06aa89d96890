"""Library code for the benchmarks in `benchmarks/` (not used by the controller).

`report`: tables, medians, the machine description and the JSON files every
benchmark writes. `netgen`: synthetic policies and topologies. `labnet`:
Mininet networks for the data-plane and convergence runs (sdnctl's lab, and the
same net with one NORMAL flow per bridge as the baseline).
"""
