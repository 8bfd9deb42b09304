-- Test setup only: at a MUC join, the token's room claim must match the
-- room (as Jitsi's mod_token_verification checks it).
local st = require "util.stanza";
local jid_split = require "util.jid".split;

module:hook("muc-occupant-pre-join", function(event)
	-- Counted by the tests: one line per join tried (focus's own marked).
	local who = event.stanza.attr.from or "";
	module:log("info", "join attempt%s: %s", who:match("^focus@") and " by focus" or "", event.room.jid);
	local claims = event.origin and event.origin.jitsi_claims;
	if not claims then return; end
	local node = jid_split(event.room.jid);
	if claims.room ~= "*" and string.lower(claims.room) ~= string.lower(node or "") then
		event.origin.send(st.error_reply(event.stanza, "cancel", "not-allowed",
			"Room and token mismatched"));
		return true;
	end
end, 10);
