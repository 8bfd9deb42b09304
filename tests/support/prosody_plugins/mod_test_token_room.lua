-- Test setup only: at a MUC join, the token's room claim must match the
-- room (as Jitsi's mod_token_verification checks it). With
-- enable_domain_verification = true and muc_mapper_domain_base set (Jitsi's
-- token/util.lib.lua verify_room), the token's sub must be "*" or that
-- domain: mod_jitsi's sub, the domain typed in Moodle, is refused otherwise.
local st = require "util.stanza";
local jid_split = require "util.jid".split;

local domain_verification = module:get_option_boolean("enable_domain_verification", false);
local domain_base = module:get_option_string("muc_mapper_domain_base");

local function room_matches(claims, node)
	if claims.room ~= "*" and string.lower(claims.room) ~= string.lower(node or "") then
		return false;
	end
	if not domain_verification then return true; end
	local sub = type(claims.sub) == "string" and string.lower(claims.sub) or "";
	return sub == "*" or (domain_base ~= nil and sub == string.lower(domain_base));
end

module:hook("muc-occupant-pre-join", function(event)
	-- Counted by the tests: one line per join tried (focus's own marked).
	local who = event.stanza.attr.from or "";
	module:log("info", "join attempt%s: %s", who:match("^focus@") and " by focus" or "", event.room.jid);
	local claims = event.origin and event.origin.jitsi_claims;
	if not claims then return; end
	local node = jid_split(event.room.jid);
	if not room_matches(claims, node) then
		event.origin.send(st.error_reply(event.stanza, "cancel", "not-allowed",
			"Room and token mismatched"));
		return true;
	end
end, 10);
