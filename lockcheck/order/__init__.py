"""Lock-ordering and lock-state claims made in comments, checked against the code.

`doc` reads the hierarchy comments (mm/rmap.c, mm/filemap.c, a driver's
"Lock ordering:" block) into an order graph; `edges` compares that graph
with the "B taken while A held" edges the analysis computes; `claims`
checks the "called with X held" prose in function comments.
"""
