"""The parser: tree shapes, precedence, SER's tolerances."""

import pytest

from serlite.modules.export import FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE
from serlite.script import nodes as N
from serlite.script.errors import ConfigError
from serlite.script.parser import parse


def body(text):
    """The statements of the main route of ``route { text }``."""
    config = parse("route {" + text + "}", "t.cfg")
    return config.items[0].body.stmts


def cond(text):
    [stmt] = body(f"if {text} ;")
    return stmt.cond


def shape(node):
    """The tree without positions, for compact comparisons."""
    if isinstance(node, N.Compare):
        return (node.left, node.op, node.right.kind, node.right.value)
    if isinstance(node, N.Not):
        return ("not", shape(node.expr))
    if isinstance(node, (N.And, N.Or)):
        return (type(node).__name__.lower(), shape(node.left), shape(node.right))
    if isinstance(node, N.Call):
        return ("call", node.name, tuple(a.value for a in node.args))
    if isinstance(node, N.RouteCall):
        return ("route", node.name)
    if isinstance(node, N.Const):
        return node.value
    raise AssertionError(node)


def test_not_negates_the_whole_comparison():
    assert shape(cond('(!method == "REGISTER")')) == ("not", ("method", "==", "str", "REGISTER"))


def test_and_binds_tighter_than_or():
    assert shape(cond("(a() || b() && c())")) == \
        ("or", ("call", "a", ()), ("and", ("call", "b", ()), ("call", "c", ())))
    assert shape(cond("((a() || b()) && c())")) == \
        ("and", ("or", ("call", "a", ()), ("call", "b", ())), ("call", "c", ()))


def test_word_operators():
    assert shape(cond("(not a() and b() or c())")) == \
        ("or", ("and", ("not", ("call", "a", ())), ("call", "b", ())), ("call", "c", ()))


def test_condition_without_parentheses():
    assert shape(cond('method == "INVITE"')) == ("method", "==", "str", "INVITE")


@pytest.mark.parametrize("text, right", [
    ("src_ip == 192.168.0.0/16", ("raw", "192.168.0.0/16")),
    ("src_ip==10.0.0.1", ("raw", "10.0.0.1")),
    ("src_ip==::1", ("raw", "::1")),
    ("src_ip == [::1]", ("raw", "[::1]")),
    ("src_ip == myself", ("word", "myself")),
    ("src_port >= 1024", ("int", 1024)),
    ("proto == udp", ("word", "udp")),
    ("af == inet6", ("word", "inet6")),
    ('uri =~ "^sip:"', ("str", "^sip:")),
])
def test_right_sides(text, right):
    c = cond(f"({text})")
    assert (c.right.kind, c.right.value) == right


def test_glued_value_stops_at_whitespace_and_punctuation():
    c = cond("(src_ip==10.0.0.0/8&&src_port==5060)")
    assert shape(c) == ("and", ("src_ip", "==", "raw", "10.0.0.0/8"),
                        ("src_port", "==", "int", 5060))


def test_msg_len():
    assert shape(cond("(msg:len >= 2048)")) == ("msg:len", ">=", "int", 2048)


def test_else_if_chain():
    [stmt] = body("if (a()) x(); else if (b()) y(); else z();")
    assert isinstance(stmt.orelse, N.If)
    assert isinstance(stmt.orelse.orelse, N.Call) and stmt.orelse.orelse.name == "z"


def test_dangling_else_binds_to_the_nearest_if():
    [stmt] = body("if (a()) if (b()) x(); else y();")
    assert stmt.orelse is None and stmt.then.orelse.name == "y"


def test_statements():
    stmts = body('f("a", -1, 2); ; break; drop; drop(); exit; return; return(3); return -2; '
                 'route(1); route(name); route("q");')
    assert [type(s).__name__ for s in stmts] == [
        "Call", "Nop", "Break", "Drop", "Drop", "Exit", "Return", "Return", "Return",
        "RouteCall", "RouteCall", "RouteCall"]
    assert [a.value for a in stmts[0].args] == ["a", -1, 2]
    assert [s.value for s in stmts[6:9]] == [None, 3, -2]
    assert [s.name for s in stmts[9:]] == ["1", "name", "q"]


def test_missing_semicolon_before_closing_brace_is_tolerated():
    stmts = body("if (a()) { x() } y()")
    assert isinstance(stmts[0].then, N.Block) and stmts[1].name == "y"


def test_route_blocks_and_names():
    config = parse('route { } route[1] { } route[two] { } route["three"] { } '
                   'failure_route[1] { } onreply_route { } onreply_route[2] { } '
                   'branch_route[1] { }', "t.cfg")
    assert [(r.kind, r.name) for r in config.items] == [
        (REQUEST_ROUTE, "0"), (REQUEST_ROUTE, "1"), (REQUEST_ROUTE, "two"),
        (REQUEST_ROUTE, "three"), (FAILURE_ROUTE, "1"), (ONREPLY_ROUTE, "0"),
        (ONREPLY_ROUTE, "2"), (8, "1")]


def test_globals_and_values():
    config = parse('debug=3\nfork = yes\nlisten=udp:127.0.0.1:5060\nlisten=tcp:[::1]:5070\n'
                   'alias="sip.example.com"\nport=-1\nlisten=br-lan', "t.cfg")
    assert [(g.name, g.value.kind, g.value.value) for g in config.items] == [
        ("debug", "int", 3), ("fork", "word", "yes"), ("listen", "raw", "udp:127.0.0.1:5060"),
        ("listen", "raw", "tcp:[::1]:5070"), ("alias", "str", "sip.example.com"),
        ("port", "int", -1), ("listen", "raw", "br-lan")]
    assert (config.items[2].line, config.items[2].col) == (3, 1)


def test_loadmodule_and_modparam():
    config = parse('loadmodule "tm.so"\nmodparam("rr", "enable_full_rr", yes)', "t.cfg")
    load, mp = config.items
    assert (load.path, load.line, load.col) == ("tm.so", 1, 12)
    assert (mp.module.value, mp.param.value, mp.value.kind, mp.value.value) == \
        ("rr", "enable_full_rr", "word", "yes")


@pytest.mark.parametrize("text, where, message", [
    ("route { if (uri) x(); }", (1, 16), "expected an operator (==, !=, =~ ...) after 'uri', "
                                         "got ')'"),
    ("route { x() y(); }", (1, 12), "missing ';' after x(...)"),
    ("route { lookup; }", (1, 9), "expected a statement, got 'lookup'"),
    ("route { f(\"a\" \"b\"); }", (1, 15), "expected ',' or ')' in the arguments of f(), "
                                          "got a string"),
    ("debug", (1, 6), "expected '=' after 'debug'"),
    ("5", (1, 1), "expected a global (name = value), loadmodule, modparam or a route block, "
                  "got number 5"),
    ("route[] { }", (1, 7), "expected a route name (a number or a name), got ']'"),
    ("loadmodule tm", (1, 12), "expected the module path in quotes: loadmodule \"tm.so\", "
                               "got 'tm'"),
])
def test_syntax_errors(text, where, message):
    with pytest.raises(ConfigError) as info:
        parse(text, "t.cfg")
    assert ((info.value.line, info.value.col), info.value.message) == (where, message)


def test_assignment_and_concatenation():
    [stmt] = body(' $ru = "sip:" + $rU + "@gw";')
    assert stmt == N.Assign(
        N.PV("ru", None, line=1, col=9),
        N.Concat([N.Value("str", "sip:", line=1, col=15), N.PV("rU", None, line=1, col=24),
                  N.Value("str", "@gw", line=1, col=30)], line=1, col=15),
        line=1, col=9)


def test_pseudo_variable_comparisons_take_expressions_on_the_right():
    c = cond('($ru != $tu && $hdr(User-Agent) =~ "Yealink" || $rp == 5060)')
    assert isinstance(c, N.Or) and isinstance(c.left, N.And)
    assert c.left.left.left == N.PV("ru", None, line=1, col=12)
    assert c.left.left.right == N.PV("tu", None, line=1, col=19)
    assert (c.left.right.left.arg, c.left.right.op, c.left.right.right.value) == \
        ("User-Agent", "=~", "Yealink")
    assert (c.right.left.name, c.right.right.kind, c.right.right.value) == ("rp", "int", 5060)


def test_function_arguments_may_be_expressions():
    [stmt] = body('log(1, "from " + $fu);')
    assert isinstance(stmt.args[1], N.Concat) and stmt.args[1].parts[1].name == "fu"
    [stmt] = body("forward(10.0.0.1, 5060);")      # glued addresses still are one value
    assert [(a.kind, a.value) for a in stmt.args] == [("raw", "10.0.0.1"), ("int", 5060)]
