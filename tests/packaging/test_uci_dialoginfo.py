"""serlite.uci and the busy lamps: pua_dialoginfo goes with the presence module (it needs
it), and its dialoginfo_set() marks each new call just before the main route relays it."""

import re

from serlite import uci
from serlite.script.compiler import compile_config

from .test_uci import LAN, LAN_ONLY_UCI


def test_the_busy_lamps_go_with_presence():
    text = uci.generate(uci.parse(LAN_ONLY_UCI), LAN)
    loads = re.findall(r'^loadmodule ".*/(\w+)\.so"$', text, re.M)
    assert ("presence" in loads) == ("pua_dialoginfo" in loads)
    assert ("pua_dialoginfo" in loads) == ("dialoginfo_set();" in text)
    compile_config(text, "generated.cfg")


def test_dialoginfo_set_comes_before_the_main_routes_relay_of_a_new_call():
    lines = uci.generate(uci.parse(LAN_ONLY_UCI), LAN).splitlines()
    marked = uci._with_dialoginfo(lines)
    at = marked.index("        dialoginfo_set();")
    main = marked.index("route {")
    assert main < at and marked[at + 2] == "    t_relay();"
    assert marked[at - 1] == '    if (method == "INVITE" && !has_totag()) {'
    assert "}" not in marked[main:at]     # inside the main route, past its in-dialog part
    text = "\n".join(marked) + "\n"
    loads = ('loadmodule "/usr/lib/ser/modules/presence.so"\n'
             'loadmodule "/usr/lib/ser/modules/pua_dialoginfo.so"\n')
    if "presence.so" not in text:
        text = text.replace('loadmodule "/usr/lib/ser/modules/sl.so"\n',
                            'loadmodule "/usr/lib/ser/modules/sl.so"\n' + loads, 1)
    compile_config(text, "generated.cfg")
