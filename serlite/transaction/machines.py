"""The four transaction state machines of RFC 3261 17 (figures 5-8) as tables.

Each table maps (state, event) -> (actions, next state).  A pair that is missing is an error in the
caller, never a silent no-op: ``step`` raises ``KeyError``.  Actions are names the transaction
classes in ``client.py``/``server.py`` carry out; the tables say *what* happens, the classes say
*how* (which bytes, which timer interval).

Events:
  client:  1xx, 2xx, 3xx (any final >= 300), A, B, D, E, F, K, fr (SER's fr_timer / fr_inv_timer,
           RFC 3261 16.6 step 11 timer C), cancel_sent (the TU sent a CANCEL for it),
           error (transport failure)
  server:  request (a retransmission), ack, send1xx, send2xx, send3xx (TU sends a response),
           G, H, I, J, L, error
"""

# Client, INVITE: RFC 3261 17.1.1, figure 5.
CLIENT_INVITE = {
    ("calling", "A"): (("retransmit", "double_A"), "calling"),
    ("calling", "B"): (("timeout",), "terminated"),
    ("calling", "fr"): (("timeout",), "terminated"),
    ("calling", "1xx"): (("stop_A", "stop_B", "arm_fr_inv", "up"), "proceeding"),
    ("calling", "2xx"): (("up",), "terminated"),
    ("calling", "3xx"): (("stop_A", "stop_B", "stop_fr", "send_ack", "up", "arm_D"), "completed"),
    ("calling", "error"): (("timeout",), "terminated"),
    ("proceeding", "1xx"): (("up",), "proceeding"),
    ("proceeding", "2xx"): (("up",), "terminated"),
    ("proceeding", "3xx"): (("stop_fr", "stop_B", "send_ack", "up", "arm_D"), "completed"),
    # 16.8: timer C fired after a provisional: CANCEL, the branch counts as 408, and the
    # transaction waits 64*T1 (timer B again) for the 487
    ("proceeding", "fr"): (("cancel", "timeout", "arm_B"), "proceeding"),
    ("proceeding", "B"): (("timeout",), "terminated"),
    ("proceeding", "error"): (("timeout",), "terminated"),
    ("calling", "cancel_sent"): ((), "calling"),
    ("proceeding", "cancel_sent"): (("arm_B",), "proceeding"),   # 9.1: 64*T1 for the final
    ("completed", "cancel_sent"): ((), "completed"),
    ("completed", "3xx"): (("send_ack",), "completed"),
    ("completed", "1xx"): ((), "completed"),
    ("completed", "2xx"): ((), "completed"),
    ("completed", "D"): ((), "terminated"),
    ("completed", "error"): ((), "terminated"),
}

# Client, non-INVITE: RFC 3261 17.1.2, figure 6.
CLIENT_NON_INVITE = {
    ("trying", "E"): (("retransmit", "double_E"), "trying"),
    ("trying", "F"): (("timeout",), "terminated"),
    ("trying", "fr"): (("timeout",), "terminated"),
    ("trying", "1xx"): (("up",), "proceeding"),
    ("trying", "2xx"): (("stop_E", "stop_F", "stop_fr", "up", "arm_K"), "completed"),
    ("trying", "3xx"): (("stop_E", "stop_F", "stop_fr", "up", "arm_K"), "completed"),
    ("trying", "error"): (("timeout",), "terminated"),
    ("proceeding", "E"): (("retransmit", "T2_E"), "proceeding"),
    ("proceeding", "F"): (("timeout",), "terminated"),
    ("proceeding", "fr"): (("timeout",), "terminated"),
    ("proceeding", "1xx"): (("up",), "proceeding"),
    ("proceeding", "2xx"): (("stop_E", "stop_F", "stop_fr", "up", "arm_K"), "completed"),
    ("proceeding", "3xx"): (("stop_E", "stop_F", "stop_fr", "up", "arm_K"), "completed"),
    ("proceeding", "error"): (("timeout",), "terminated"),
    ("completed", "1xx"): ((), "completed"),
    ("completed", "2xx"): ((), "completed"),
    ("completed", "3xx"): ((), "completed"),
    ("completed", "K"): ((), "terminated"),
    ("completed", "error"): ((), "terminated"),
}

# Server, INVITE: RFC 3261 17.2.1, figure 7, with the Accepted state of RFC 6026 7.1: after a
# 2xx the transaction stays for timer L, absorbing retransmitted INVITEs and relaying further 2xx.
SERVER_INVITE = {
    ("proceeding", "request"): (("resend",), "proceeding"),
    ("proceeding", "send1xx"): (("send",), "proceeding"),
    ("proceeding", "send2xx"): (("send", "arm_L"), "accepted"),
    ("proceeding", "send3xx"): (("send", "arm_G", "arm_H"), "completed"),
    ("proceeding", "ack"): ((), "proceeding"),
    ("proceeding", "error"): ((), "terminated"),
    ("completed", "request"): (("resend",), "completed"),
    ("completed", "G"): (("resend", "double_G"), "completed"),
    ("completed", "H"): (("timeout",), "terminated"),
    ("completed", "ack"): (("stop_G", "stop_H", "arm_I"), "confirmed"),
    ("completed", "error"): ((), "terminated"),
    ("completed", "send1xx"): ((), "completed"),
    ("completed", "send2xx"): ((), "completed"),
    ("completed", "send3xx"): ((), "completed"),
    ("accepted", "request"): ((), "accepted"),
    ("accepted", "ack"): ((), "accepted"),
    ("accepted", "send1xx"): ((), "accepted"),
    ("accepted", "send2xx"): (("send",), "accepted"),
    ("accepted", "send3xx"): ((), "accepted"),
    ("accepted", "L"): ((), "terminated"),
    ("accepted", "error"): ((), "terminated"),
    ("confirmed", "request"): ((), "confirmed"),
    ("confirmed", "ack"): ((), "confirmed"),
    ("confirmed", "I"): ((), "terminated"),
    ("confirmed", "send1xx"): ((), "confirmed"),
    ("confirmed", "send2xx"): ((), "confirmed"),
    ("confirmed", "send3xx"): ((), "confirmed"),
}

# Server, non-INVITE: RFC 3261 17.2.2, figure 8.
SERVER_NON_INVITE = {
    ("trying", "request"): ((), "trying"),
    ("trying", "send1xx"): (("send",), "proceeding"),
    ("trying", "send2xx"): (("send", "arm_J"), "completed"),
    ("trying", "send3xx"): (("send", "arm_J"), "completed"),
    ("trying", "error"): ((), "terminated"),
    ("proceeding", "request"): (("resend",), "proceeding"),
    ("proceeding", "send1xx"): (("send",), "proceeding"),
    ("proceeding", "send2xx"): (("send", "arm_J"), "completed"),
    ("proceeding", "send3xx"): (("send", "arm_J"), "completed"),
    ("proceeding", "error"): ((), "terminated"),
    ("completed", "request"): (("resend",), "completed"),
    ("completed", "send1xx"): ((), "completed"),
    ("completed", "send2xx"): ((), "completed"),
    ("completed", "send3xx"): ((), "completed"),
    ("completed", "J"): ((), "terminated"),
    ("completed", "error"): ((), "terminated"),
}


def response_event(status):
    """The table input for a response status code."""
    if status < 200:
        return "1xx"
    if status < 300:
        return "2xx"
    return "3xx"
