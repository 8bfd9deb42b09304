-- Test setup only: the token-moderation plugin's semantics (JITSI.md section
-- 6): the top-level boolean "moderator" claim sets owner, else member, and
-- every other attempt to grant owner is refused.
module:hook("muc-occupant-joined", function(event)
	local claims = event.origin and event.origin.jitsi_claims;
	if not claims then return; end
	local affiliation = claims.moderator == true and "owner" or "member";
	event.room:set_affiliation(true, event.occupant.bare_jid, affiliation);
end);

module:hook("muc-pre-set-affiliation", function(event)
	if event.affiliation == "owner" and event.actor ~= nil then
		event.allowed = false;
	end
end);
