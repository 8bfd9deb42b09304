-- Test setup only: token authentication as Jitsi's mod_auth_token checks
-- HS256 tokens (JITSI.md section 5), with the same failure texts. Built on
-- Prosody's own util.json, util.encodings and util.hashes.
local sasl = require "util.sasl";
local http = require "util.http";
local generate_id = require "util.id".medium;
local json = require "util.json";
local base64 = require "util.encodings".base64;
local hmac_sha256 = require "util.hashes".hmac_sha256;

local app_id = module:get_option_string("app_id");
local app_secret = module:get_option_string("app_secret");
-- As Jitsi's allow_empty_token: a client without a token logs in anonymously.
local allow_empty_token = module:get_option_boolean("allow_empty_token", false);
if allow_empty_token then
	module:log("warn", "allow_empty_token is set: anyone can log in without a token");
end

-- The token rides on the WebSocket or BOSH URL: ?token=...
local function remember_token(event)
	local query = event.request.url.query;
	local params = query and http.formdecode(query);
	event.session.auth_token = type(params) == "table" and params.token or nil;
end
module:hook_global("websocket-session", remember_token);
module:hook_global("bosh-session", remember_token);

local function from_url64(part)
	local padded = part:gsub("-", "+"):gsub("_", "/");
	padded = padded .. string.rep("=", (4 - #padded % 4) % 4);
	return base64.decode(padded);
end

local function to_url64(raw)
	return (base64.encode(raw):gsub("+", "-"):gsub("/", "_"):gsub("=", ""));
end

local function decode(part)
	local raw = from_url64(part);
	return raw and json.decode(raw);
end

local function verify(token)
	local h, p, sig = token:match("^([^.]+)%.([^.]+)%.([^.]+)$");
	if not h then return nil, "Invalid token"; end
	local header = decode(h);
	if type(header) ~= "table" or (header.typ ~= nil and header.typ ~= "JWT")
		or header.alg ~= "HS256" then
		return nil, "Invalid or incorrect alg";
	end
	if to_url64(hmac_sha256(app_secret, h .. "." .. p)) ~= sig then
		return nil, "Invalid signature";
	end
	local claims = decode(p);
	if type(claims) ~= "table" then return nil, "Invalid token"; end
	local now = os.time();
	if type(claims.exp) ~= "number" or claims.exp < now then return nil, "Not acceptable by exp"; end
	if type(claims.nbf) == "number" and claims.nbf > now then return nil, "Not acceptable by nbf"; end
	if claims.iss ~= app_id then return nil, "Invalid issuer ('iss' claim)"; end
	if claims.aud == nil then return nil, "'aud' claim is missing"; end
	if type(claims.room) ~= "string" then return nil, "'room' claim is missing"; end
	return claims;
end

-- An ANONYMOUS mechanism that can fail, as Jitsi's token plugin registers it.
sasl.registerMechanism("ANONYMOUS", {"anonymous"}, function(self, message)
	local username = generate_id():lower();
	local ok, condition, text = self.profile.anonymous(self, username, self.realm);
	if ok == true then
		self.username = username;
		return "success";
	end
	return "failure", condition or "not-allowed", text;
end);

local provider = {};
function provider.test_password() return nil, "Password based auth not supported."; end
function provider.get_password() return nil, "Password not available."; end
function provider.set_password() return nil, "Password based auth not supported."; end
function provider.user_exists() return nil, "Only token users are supported."; end
function provider.create_user() return nil, "Account creation not supported."; end
function provider.users() return next, {}, nil; end
function provider.get_sasl_handler(session)
	return sasl.new(module.host, {
		anonymous = function(_, username, realm)
			local token = session.auth_token;
			if not token and allow_empty_token then return true; end
			if not token then return false, "not-allowed", "token required"; end
			local claims, err = verify(token);
			if not claims then return false, "not-allowed", err; end
			session.jitsi_claims = claims;
			return true;
		end;
	});
end
module:provides("auth", provider);
