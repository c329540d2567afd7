"""The script's route block types (SER's REQUEST_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE,
BRANCH_ROUTE): bit flags, so that a module function's table entry can say where it may be
called.  Below proxy/, script/ and modules/, which all name them (``modules.export``
re-exports them for the module tables)."""

REQUEST_ROUTE = 1
FAILURE_ROUTE = 2
ONREPLY_ROUTE = 4
BRANCH_ROUTE = 8
ANY_ROUTE = REQUEST_ROUTE | FAILURE_ROUTE | ONREPLY_ROUTE | BRANCH_ROUTE

ROUTE_NAMES = {
    REQUEST_ROUTE: "route",
    FAILURE_ROUTE: "failure_route",
    ONREPLY_ROUTE: "onreply_route",
    BRANCH_ROUTE: "branch_route",
}
