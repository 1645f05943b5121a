"""Search compression x backend x runtime options for the fastest candidate inside a quality budget.

Named ``tuning`` (not ``tune``) so that ``genfast.tune`` stays the function of the public API.
"""
