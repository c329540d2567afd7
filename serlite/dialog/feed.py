"""What tm sees pass, told to the dialog tracker: tm calls a watcher's four methods (Kamailio's
tm callbacks TMCB_REQUEST_FWDED, TMCB_RESPONSE_OUT, TMCB_ON_FAILURE, TMCB_DESTROY), and this
one turns them into the tracker's events.  Pure (the time comes with each call).

It keeps the INVITE's Dialog on the transaction's ResponseContext (``rc.dialog``), so the
responses of that INVITE find their call without parsing a header or a lookup; the header
parsing it does is the INVITE's From/To (the script has mostly parsed them already), the To tag
of the first provisional and of the 2xx, and the tags of the BYE.  The ACK of the 2xx changes no state and is not looked at.
"""

from ..sip.errors import ParseError
from .tracker import TRYING


class DialogFeed:
    """A tm watcher that feeds ``tracker``."""

    def __init__(self, tracker):
        self.tracker = tracker

    def request(self, st, ctx, now):
        """A request was relayed: ``st`` its server transaction (None for ACK and CANCEL)."""
        msg = ctx.msg
        method = msg.method
        try:
            if method == "INVITE":
                to = msg.to
                if to.tag is not None or st is None:
                    return          # a re-INVITE: the call goes on as it was
                frm = msg.from_
                dlg = self.tracker.invite(msg.call_id, frm.tag, frm.uri_text, to.uri_text, now)
                st.data.dialog = dlg
            elif method == "BYE":
                from_tag = msg.from_.tag
                dlg = self.tracker.in_dialog(msg.call_id, from_tag, msg.to.tag)
                if dlg is not None:
                    # the callee's BYE has the tags swapped (pua_dialoginfo's remote-bye)
                    self.tracker.bye(dlg, now, from_tag != dlg.from_tag)
            elif method == "CANCEL":
                dlg = self.tracker.find(msg.call_id, msg.from_.tag)
                if dlg is not None:
                    self.tracker.cancel(dlg)
        except (ParseError, AttributeError):
            return      # no From/To to key it by (a broken request the script let through)

    def response_out(self, st, status, reason, msg, now):
        """A response to ``st`` went upstream: ``msg`` the relayed Response, None when tm
        made it (then ``reason``)."""
        rc = st.data
        dlg = rc.dialog if rc is not None else None
        if dlg is None or status <= 100:
            return
        to_tag = None
        if msg is not None:
            reason = msg.reason
            if status < 300 and (status >= 200 or dlg.state == TRYING):
                # the answer's tag: a BYE of either side is matched by it; the first ringing
                # branch's names the early dialog (pua_dialoginfo's call pick-up): one
                # header parse per call, the other provisionals' are not looked at
                try:
                    to_tag = msg.to.tag
                except (ParseError, AttributeError):
                    to_tag = None
        self.tracker.response(dlg, status, reason, to_tag, now)

    def failure(self, st, now):
        """Every branch answered without a 2xx (before failure_route): nothing for dialogs,
        the final response that follows ends the call."""

    def ended(self, st, now):
        """The server transaction ended: an unanswered call ends with it."""
        rc = st.data
        dlg = rc.dialog if rc is not None else None
        if dlg is not None:
            self.tracker.transaction_ended(dlg, now)
