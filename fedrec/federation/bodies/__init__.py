"""Reusable backbone bodies: how a backbone's non-item parameters are shared and cut for a narrower device.

`sasrec`: every weight's leading rows/columns at the device's width, attention's packed q/k/v cut block by block
(HeteroFL). MF's body is the private user vector, which never leaves the device (`fedrec.device.mf`): it has no
shared tensors.
"""
