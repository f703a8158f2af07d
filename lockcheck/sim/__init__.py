"""The reference simulator: interleavings that prove or refute a finding.

Threads are small programs (`program.Op` lists) compiled from the model of
the function under review (`from_model`) and from actor models written in
clean C (`actors`); `explore` searches their interleavings breadth first for
the shortest violation of the scenario's invariants; `run` ties a scenario
(`scenarios`) to code; `render` prints timelines; `evidence` attaches the
outcome to findings.
"""
