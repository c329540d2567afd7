"""serlite.uci and the busy lamps: pua_dialoginfo goes with the presence module (it needs
it), and its dialoginfo_set() marks each new call once lookup() found the callee."""

import re

from serlite import uci
from serlite.script.compiler import compile_config

from .test_uci import LAN, LAN_ONLY_UCI


def test_the_busy_lamps_go_with_presence():
    text = uci.generate(uci.parse(LAN_ONLY_UCI), LAN)
    loads = re.findall(r'^loadmodule ".*/(\w+)\.so"$', text, re.M)
    assert "presence" in loads and "pua_dialoginfo" in loads
    assert loads.index("presence") < loads.index("pua_dialoginfo")
    compile_config(text, "generated.cfg")


def test_dialoginfo_set_comes_before_the_main_routes_relay_of_a_new_call():
    lines = uci.generate(uci.parse(LAN_ONLY_UCI), LAN).splitlines()
    assert lines.count("        dialoginfo_set();") == 1
    at = lines.index("        dialoginfo_set();")
    main = lines.index("route {")
    assert lines[at - 1] == '    if (method == "INVITE" && !has_totag()) {'
    # inside the main route, once lookup() found the callee, before the call is relayed
    assert "}" not in lines[main:at]
    assert lines.index('        if (!lookup("location")) {', main) < at
    assert at < lines.index("    t_relay();", at) < lines.index("}", at)
