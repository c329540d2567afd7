"""PIDF and dialog-info documents: checked, merged as presence_xml merges, versions per
watcher."""

import pytest

from serlite.presence import pidf

A = ('<?xml version="1.0" encoding="UTF-8"?>\n'
     '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:100@h">'
     '<tuple id="phone"><status><basic>open</basic></status></tuple></presence>')
B = ('<?xml version="1.0"?><p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" '
     'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:100@h">'
     '<p:tuple id="soft"><p:status><p:basic>closed</p:basic></p:status></p:tuple>'
     '<dm:person id="x"><dm:note>away</dm:note></dm:person>'
     '<p:tuple id="phone"><p:status><p:basic>closed</p:basic></p:status></p:tuple>'
     '</p:presence>')


def test_check_accepts_pidf_with_any_prefix():
    assert [c[2:] for c in pidf.check(A, "presence", pidf.PIDF_NS).children] == \
        [("tuple", "phone")]
    assert [c[2:] for c in pidf.check(B, "presence", pidf.PIDF_NS).children] == \
        [("tuple", "soft"), ("person", "x"), ("tuple", "phone")]


@pytest.mark.parametrize("text", [
    "", "<presence/>",                                    # no namespace
    '<presence xmlns="urn:other"/>',
    '<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple></presence>',
    '<presence xmlns="urn:ietf:params:xml:ns:pidf"></presence><x/>',
    '<!DOCTYPE x [<!ENTITY a "b">]><presence xmlns="urn:ietf:params:xml:ns:pidf"/>',
    '<presence xmlns="urn:ietf:params:xml:ns:pidf"><a < b/></presence>',
    '<presence xmlns="urn:ietf:params:xml:ns:pidf">' + "<a>" * 40 + "</a>" * 40 +
    "</presence>",
])
def test_check_refuses(text):
    with pytest.raises(pidf.DocumentError):
        pidf.check(text, "presence", pidf.PIDF_NS)


def test_merge_concatenates_newest_first_and_keeps_one_tuple_per_id():
    newest = pidf.check(A, "presence", pidf.PIDF_NS)
    older = pidf.check(B, "presence", pidf.PIDF_NS)
    merged = pidf.merge([newest, older])
    doc = pidf.check(merged, "presence", pidf.PIDF_NS)
    assert [c[2:] for c in doc.children] == [("tuple", "phone"), ("tuple", "soft"),
                                             ("person", "x")]
    # the copied children keep their prefixes' namespaces
    assert '<p:tuple xmlns:p="urn:ietf:params:xml:ns:pidf"' in merged
    assert 'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"' in merged
    assert pidf.basic_status(merged) == "open"
    assert pidf.basic_status(B) == "closed"


def test_merge_into_an_empty_root():
    empty = pidf.check('<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="x"/>',
                       "presence", pidf.PIDF_NS)
    merged = pidf.merge([empty, pidf.check(A, "presence", pidf.PIDF_NS)])
    assert pidf.check(merged, "presence", pidf.PIDF_NS).children[0][2:] == ("tuple", "phone")


def test_closed_document_is_a_pidf_saying_closed():
    text = pidf.closed_document('sip:"x"@h')
    pidf.check(text, "presence", pidf.PIDF_NS)
    assert pidf.basic_status(text) == "closed" and "&quot;x&quot;" in text


def test_dialog_info_version_rewritten_and_activity():
    doc = ('<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
           'version="0" state="full" entity="sip:100@h"><dialog id="a" direction="initiator">'
           '<state>confirmed</state></dialog></dialog-info>')
    pidf.check(doc, "dialog-info", pidf.DIALOG_NS)
    assert 'version="7"' in pidf.with_version(doc, 7)
    assert pidf.dialog_activity(doc) == "confirmed"
    empty = pidf.empty_dialog_info("sip:100@h", 3)
    assert 'version="3"' in empty and pidf.dialog_activity(empty) is None
    assert 'version="4"' in pidf.with_version(empty, 4)
    pidf.check(empty, "dialog-info", pidf.DIALOG_NS)
