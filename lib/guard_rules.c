/*
 * guard_rules.c - the built-in detectors: one table row per pattern, with
 * the literals that trigger it, where it runs, how its matches are
 * validated and scored, and which context words raise its score.
 *
 * Patterns are PCRE2 in byte mode (no UTF): every built-in pattern is ASCII
 * or spells UTF-8 byte sequences explicitly, so invalid UTF-8 can never make
 * a match fail or split a character. Every repetition is bounded or
 * separated by disjoint classes, so no pattern backtracks more than
 * linearly; the PCRE2 match limit is the backstop.
 *
 * Secrets rules are written for this project after reading gitleaks' rule
 * set (its "keywords" are our trigger literals); PII rules follow the
 * shapes Presidio recognises, with validation in guard_validate.c.
 */
#include <string.h>

#include "guard_int.h"
#include "guard_validate.h"

/* The tables below are laid out by hand for reading; keep the formatter off. */
/* clang-format off */
const ifq_gentity_t ifq_guard_entities[GE_COUNT] = {
    [GE_EMAIL] = {"EMAIL_ADDRESS", GG_PII},
    [GE_PHONE] = {"PHONE_NUMBER", GG_PII},
    [GE_CARD] = {"CREDIT_CARD", GG_PII},
    [GE_IBAN] = {"IBAN_CODE", GG_PII},
    [GE_SSN] = {"US_SSN", GG_PII},
    [GE_IP] = {"IP_ADDRESS", GG_PII},
    [GE_MAC] = {"MAC_ADDRESS", GG_PII},
    [GE_BITCOIN] = {"BITCOIN_ADDRESS", GG_PII},
    [GE_OPENAI] = {"OPENAI_API_KEY", GG_SECRETS},
    [GE_ANTHROPIC] = {"ANTHROPIC_API_KEY", GG_SECRETS},
    [GE_AWS_KEY_ID] = {"AWS_ACCESS_KEY_ID", GG_SECRETS},
    [GE_AWS_SECRET] = {"AWS_SECRET_ACCESS_KEY", GG_SECRETS},
    [GE_GITHUB] = {"GITHUB_TOKEN", GG_SECRETS},
    [GE_GITLAB] = {"GITLAB_TOKEN", GG_SECRETS},
    [GE_SLACK] = {"SLACK_TOKEN", GG_SECRETS},
    [GE_STRIPE] = {"STRIPE_KEY", GG_SECRETS},
    [GE_GOOGLE] = {"GOOGLE_API_KEY", GG_SECRETS},
    [GE_PRIVATE_KEY] = {"PRIVATE_KEY", GG_SECRETS},
    [GE_JWT] = {"JWT", GG_SECRETS},
    [GE_GENERIC_SECRET] = {"GENERIC_SECRET", GG_SECRETS},
    [GE_INJECTION] = {"PROMPT_INJECTION", GG_INJECTION},
    [GE_INVISIBLE] = {"INVISIBLE_TEXT", GG_INJECTION},
    [GE_EXFIL] = {"MARKDOWN_EXFILTRATION", GG_INJECTION},
};

const char *const ifq_guard_group_names[GG_COUNT] = {"pii", "secrets", "injection", "custom",
                                                     "limits"};

#define CI PCRE2_CASELESS

/* Word gaps used by the injection phrases: bounded, lazy, within a sentence. */
#define GAP(n) "[^.!?\\n]{0," #n "}?"

const ifq_grule_t
    ifq_guard_rules[] =
        {
            /* ---------------- PII ---------------- */
            {"email", GE_EMAIL,
             "(?<![A-Za-z0-9._%+\\-])[A-Za-z0-9._%+\\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}[A-"
             "Za-z0-9])?"
             "(?:\\.[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?)+(?![A-Za-z0-9\\-]|\\.[A-Za-z0-"
             "9])",
             0, NULL, RG_AT, 0, 0, 0.9, CK_EMAIL, CX_EMAIL, 0, NULL},
            {"phone", GE_PHONE,
             "(?<![\\w@.+/\\-])(?:\\+|\\(\\+?)?\\d[\\d.() \\-]{5,22}\\d"
             "(?:[ ]?(?:x|ext\\.?|#)[ ]?\\d{1,6})?(?![\\w@]|[.\\-/:]\\d)",
             0, NULL, RG_NUM, 7, 0, 0, CK_PHONE, CX_PHONE, 0, NULL},
            {"card", GE_CARD, "(?<![\\w.+\\-])\\d(?:[ \\-]?\\d){11,18}(?![\\w]|[.\\-]\\d)", 0, NULL,
             RG_NUM, 12, 0, 0.9, CK_CARD, CX_CARD, 0, NULL},
            {"iban", GE_IBAN, "(?<![A-Za-z0-9])[A-Za-z]{2}\\d{2}(?:[ ]?[A-Za-z0-9]){11,32}", 0,
             NULL, RG_NUM, 4, 0, 0.95, CK_IBAN, CX_IBAN, 0, NULL},
            {"ssn", GE_SSN, "(?<![\\w.+\\-])\\d{3}([\\- .]?)\\d{2}\\1\\d{4}(?![\\w]|[.\\-]\\d)", 0,
             NULL, RG_NUM, 9, 0, 0, CK_SSN, CX_SSN, 0, NULL},
            {"ipv4", GE_IP, "(?<![\\w.\\-])(?:\\d{1,3}\\.){3}\\d{1,3}(?![\\w\\-]|\\.\\d)", 0, NULL,
             RG_NUM, 4, 0, 0.6, CK_IPV4, CX_IP, 0, NULL},
            {"ipv6", GE_IP,
             "(?<![\\w:.])(?:[0-9A-Fa-f]{0,4}:){2,8}(?:(?:\\d{1,3}\\.){3}\\d{1,3}|[0-9A-Fa-f]{0,4})"
             "(?![\\w:]|\\.\\w)",
             0, NULL, RG_HEX, 0, 0, 0.6, CK_IPV6, CX_IP, 0, NULL},
            {"mac", GE_MAC,
             "(?<![\\w:\\-.])[0-9A-Fa-f]{2}([:\\-])[0-9A-Fa-f]{2}(?:\\1[0-9A-Fa-f]{2}){4}(?![\\w:"
             "\\-]|\\.\\w)"
             "|(?<![\\w.])[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}(?![\\w.])",
             0, NULL, RG_HEX | RG_NUM, 4, 0, 0.6, CK_NONE, CX_MAC, 0, NULL},
            {"bitcoin_base58", GE_BITCOIN,
             "(?<![A-Za-z0-9])[13mn2][1-9A-HJ-NP-Za-km-z]{25,34}(?![A-Za-z0-9])", 0, NULL, RG_RUN,
             26, 0, 0.85, CK_BITCOIN, CX_CRYPTO, 0, NULL},
            {"bitcoin_bech32", GE_BITCOIN,
             "(?<![A-Za-z0-9])(?:bc|tb|BC|TB)1[02-9ac-hj-np-zAC-HJ-NP-Z]{11,87}(?![A-Za-z0-9])", 0,
             "bc1|tb1", RG_LIT, 0, 0, 0.85, CK_BITCOIN, CX_CRYPTO, 0, NULL},

            /* ---------------- secrets ---------------- */
            {"anthropic", GE_ANTHROPIC, "\\bsk-ant-[a-z]{2,10}\\d{0,3}-[A-Za-z0-9_\\-]{32,200}+", 0,
             "sk-ant-", RG_LIT, 0, 0, 0.95, CK_TOKEN, CX_NONE, 0, NULL},
            {"openai", GE_OPENAI,
             "\\bsk-(?!ant-)(?:(?:proj|svcacct|admin|service|None)-)?[A-Za-z0-9_\\-]{32,250}+", 0,
             "sk-", RG_LIT, 0, 0, 0.9, CK_TOKEN, CX_NONE, 0, NULL},
            {"aws_key_id", GE_AWS_KEY_ID, "\\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\\b",
             0, "akia|asia|abia|acca|a3t", RG_LIT, 0, 0, 0.9, CK_NONE, CX_NONE, 0, NULL},
            {"aws_secret", GE_AWS_SECRET,
             "(?i:aws)[\\w.\\-]{0,30}?(?i:secret)[\\w.\\-]{0,30}?[\"']?[ \\t]{0,3}(?:=|:=|=>|:)[ "
             "\\t]{0,3}"
             "[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
             0, "aws", RG_LIT, 0, 1, 0.95, CK_TOKEN, CX_NONE, 0, NULL},
            {"github", GE_GITHUB,
             "\\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{60,255})\\b", 0,
             "ghp_|gho_|ghu_|ghs_|ghr_|github_pat_", RG_LIT, 0, 0, 0.95, CK_TOKEN, CX_NONE, 0,
             NULL},
            {"gitlab", GE_GITLAB,
             "\\bgl(?:pat|dt|rt|ptt|ft|imt|agent|soat|cbt|oas)-[A-Za-z0-9_\\-]{20,80}+", 0,
             "glpat-|gldt-|glrt-|glptt-|glft-|glimt-|glagent-|glsoat-|glcbt-|gloas-", RG_LIT, 0, 0,
             0.9, CK_TOKEN, CX_NONE, 0, NULL},
            {"slack", GE_SLACK,
             "\\b(?:xox[abposre](?:\\.[a-z0-9]+)?-[A-Za-z0-9\\-]{10,250}+|xapp-\\d-[A-Z0-9]+-\\d+-["
             "a-z0-9]+)",
             0, "xoxa|xoxb|xoxp|xoxo|xoxs|xoxr|xoxe|xapp-", RG_LIT, 0, 0, 0.9, CK_TOKEN, CX_NONE,
             0, NULL},
            {"slack_webhook", GE_SLACK,
             "https?://hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/"
             "_\\-]{20,160}",
             0, "hooks.slack.com", RG_LIT, 0, 0, 0.9, CK_NONE, CX_NONE, 0, NULL},
            {"stripe", GE_STRIPE,
             "\\b(?:(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9]{24,64})\\b",
             0, "sk_live_|sk_test_|sk_prod_|rk_live_|rk_test_|rk_prod_|whsec_", RG_LIT, 0, 0, 0.9,
             CK_TOKEN, CX_NONE, 0, NULL},
            {"google", GE_GOOGLE,
             "\\b(?:AIza[0-9A-Za-z_\\-]{35}|ya29\\.[0-9A-Za-z_\\-]{20,2048}+)(?![0-9A-Za-z_\\-])",
             0, "aiza|ya29.", RG_LIT, 0, 0, 0.9, CK_TOKEN, CX_NONE, 0, NULL},
            {"private_key", GE_PRIVATE_KEY,
             "-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
             "(?:[\\s\\S]{0,20000}?-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
             "|[A-Za-z0-9+/=\\s:,\\-]{0,20000}+)",
             0, "-----begin", RG_LIT, 0, 0, 1.0, CK_NONE, CX_NONE, 0, NULL},
            {"jwt", GE_JWT,
             "\\beyJ[A-Za-z0-9_\\-]{10,4096}+\\.eyJ[A-Za-z0-9_\\-]{10,16384}+\\.[A-Za-z0-9_\\-]{0,"
             "2048}+",
             0, "eyj", RG_LIT, 0, 0, 0.9, CK_JWT, CX_NONE, 0, NULL},
            {"generic_secret", GE_GENERIC_SECRET,
             "(?:passw(?:or)?d|passphrase|pwd|secret|token|api[_\\-]?key|access[_\\-]?key|auth[_\\-"
             "]?key"
             "|private[_\\-]?key|credentials?)[\\w.\\-]{0,20}+[\"'\\]]?[ \\t]{0,3}(?:=|:=|=>|:)[ "
             "\\t]{0,3}"
             "[\"'`]?([^\\s\"'`,;<>(){}\\[\\]]{8,200}+)",
             CI,
             "passw|passphrase|pwd|secret|token|api_key|apikey|api-key|access_key|access-key|"
             "accesskey"
             "|auth_key|auth-key|authkey|private_key|private-key|privatekey|credential",
             RG_LIT, 0, 1, 0.8, CK_SECRET_VALUE, CX_NONE, 0, NULL},

            /* ---------------- prompt injection ---------------- */
            {"override", GE_INJECTION,
             "\\b(?:ignore|disregard|forget|bypass|override|neglect|skip)\\b" GAP(
                 40) "\\b(?:previous|prior|above|earlier|preceding|former|initial|original|old|all|"
                     "any|every|your"
                     "|the|these|those|system|safety)\\b" GAP(
                         30) "\\b(?:instructions?|prompts?|rules|directives?|guidelines|guidance|"
                             "constraints|restrictions"
                             "|commands?|context|programming|polic(?:y|ies)|messages?|training|"
                             "filters?)\\b",
             CI, "ignor|disregard|forget|bypass|overrid|neglect|skip", RG_LIT, 0, 0, 0.9, CK_NONE,
             CX_NONE, 0, NULL},
            {"new_instructions", GE_INJECTION,
             "\\b(?:new|updated|revised|real|actual|true|secret|hidden)\\s+(?:system\\s+)?"
             "(?:instructions?|rules|prompt|directives?)\\s*:",
             CI, "instruction|rules|prompt|directive", RG_LIT, 0, 0, 0.6, CK_NONE, CX_NONE, 0,
             NULL},
            {"no_longer", GE_INJECTION,
             "\\b(?:you\\s+are\\s+no\\s+longer|you\\s+will\\s+no\\s+longer|from\\s+now\\s+on,?\\s+"
             "you\\s+"
             "(?:are|will|must|shall)|henceforth,?\\s+you)\\b",
             CI, "no longer|from now on|henceforth", RG_LIT, 0, 0, 0.4, CK_NONE, CX_NONE, 0, NULL},
            {"prompt_extraction", GE_INJECTION,
             "\\b(?:reveal|show|print|display|output|repeat|recite|leak|dump|expose|disclose|"
             "tell\\s+me"
             "|give\\s+me|share|spell\\s+out|write\\s+out|what\\s+(?:is|are|was|were))\\b" GAP(
                 30) "\\b(?:your|the|its)\\s+(?:(?:full|entire|exact|complete|original|initial|"
                     "hidden|secret"
                     "|internal|confidential|verbatim)\\s+){0,3}(?:system\\s+(?:prompt|message|"
                     "instructions?)"
                     "|(?:initial|original|hidden|secret|internal|pre-?)\\s*(?:prompt|instructions?"
                     ")"
                     "|(?:prompt|instructions?)\\s+(?:above|you\\s+(?:were|have\\s+been)\\s+given)"
                     ")",
             CI, "prompt|instruction|system message", RG_LIT, 0, 0, 0.8, CK_NONE, CX_NONE, 0, NULL},
            {"repeat_above", GE_INJECTION,
             "\\b(?:repeat|print|output|copy|recite)\\b" GAP(
                 20) "\\b(?:the\\s+)?(?:words|text|everything|all|content|lines)\\s+(?:above|"
                     "before\\s+this"
                     "|preceding|prior)\\b",
             CI, "above|preceding|before this|prior", RG_LIT, 0, 0, 0.5, CK_NONE, CX_NONE, 0, 
             /* every match contains one: */ "repeat|print|output|copy|recite"},
            {"role_marker", GE_INJECTION,
             "<\\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
             "|end_header_id|begin_of_text)\\|>|\\[/?INST\\]|<</?SYS>>|<(?:start|end)_of_turn>",
             CI,
             "<\\|im_|<\\|system|<\\|user|<\\|assistant|<\\|endof|<\\|eot|<\\|start_h|<\\|end_h"
             "|<\\|begin_of|[inst]|[/inst]|<<sys>>|<</sys>>|_of_turn>",
             RG_LIT, 0, 0, 0.85, CK_NONE, CX_NONE, 0, NULL},
            {"role_header", GE_INJECTION,
             "(?:^|\\n)[ \\t]*#{2,4}[ \\t]*(?:system|instructions?|assistant)\\b", CI, "##", RG_LIT,
             0, 0, 0.6, CK_NONE, CX_NONE, 0, NULL},
            {"role_line", GE_INJECTION, "(?:^|\\n)[ \\t]*(?:system|developer)[ \\t]*:", CI,
             "system:|developer:|system :", RG_LIT, 0, 0, 0.45, CK_NONE, CX_NONE, 0, NULL},
            {"dan", GE_INJECTION, "\\bdo\\s+anything\\s+now\\b", CI, "anything now|anything  now",
             RG_LIT, 0, 0, 0.9, CK_NONE, CX_NONE, 0, NULL},
            {"dan_name", GE_INJECTION, "\\bDAN\\b", 0, "dan", RG_LIT, 0, 0, 0.45, CK_NONE, CX_NONE,
             0, NULL},
            {"jailbreak_mode", GE_INJECTION,
             "\\b(?:god|jailbreak|jailbroken|evil|unfiltered|uncensored|unrestricted|dan|opposite|"
             "chaos"
             "|developer)\\s+mode\\b",
             CI, "mode", RG_LIT, 0, 0, 0.7, CK_NONE, CX_NONE, 0,
             /* every match contains one: */
             "god|jailbr|evil|unfiltered|uncensored|unrestricted|dan|opposite|chaos|developer"},
            {"jailbreak_word", GE_INJECTION, "\\bjail[\\s\\-]?break(?:s|ing|ed|en)?\\b", CI,
             "jailbr|jail br|jail-br", RG_LIT, 0, 0, 0.4, CK_NONE, CX_NONE, 0, NULL},
            {"unfiltered", GE_INJECTION,
             "\\b(?:unfiltered|uncensored|unrestricted|amoral|unethical|immoral|without\\s+(?:"
             "any\\s+)?"
             "(?:restrictions|filters|limits|limitations|boundaries|censorship|morals|ethics)"
             "|no\\s+(?:restrictions|filters|limits|limitations|boundaries|censorship|morals|ethics"
             "|rules))\\b",
             CI,
             "unfiltered|uncensored|unrestricted|amoral|unethical|immoral|restrictions|filters|"
             "limits"
             "|limitations|boundaries|censorship|morals|ethics|no rules",
             RG_LIT, 0, 0, 0.45, CK_NONE, CX_NONE, 0, NULL},
            {"policy_bypass", GE_INJECTION,
             "\\b(?:without|free\\s+(?:of|from)|not\\s+bound\\s+by|break(?:ing)?|ignor(?:e|ing)"
             "|violat(?:e|ing)|bypass(?:ing)?|circumvent(?:ing)?|evad(?:e|ing))\\s+"
             "(?:(?:any|all|the|your|its|of)\\s+){0,3}(?:openai|anthropic|content|safety|ethical|"
             "moral"
             "|usage)\\s+(?:polic(?:y|ies)|guidelines|rules|filters?|restrictions|principles|"
             "standards)\\b",
             CI, "polic|guideline|rules|filter|restriction|principle|standards", RG_LIT, 0, 0, 0.7,
             CK_NONE, CX_NONE, 0,
             /* every match contains one: */
             "openai|anthropic|content|safety|ethical|moral|usage"},
            {"persona", GE_INJECTION,
             "\\b(?:pretend|act|roleplay|role-?play|behave|you\\s+are\\s+now|simulate|imagine\\s+"
             "you\\s+are)"
             "\\b" GAP(40) "\\b(?:ai|assistant|chatbot|model|bot|gpt|llm|character)\\b" GAP(
                 60) "\\b(?:without|no|not|never|free|unrestricted|unfiltered|uncensored|any)"
                     "\\b" GAP(20) "\\b(?:restrictions?|limits?|limitations|filters?|rules|"
                                   "guidelines|ethics|morals|censorship"
                                   "|boundaries)\\b",
             CI,
             "pretend|act as|act like|roleplay|role-play|role play|behave|you are now|simulate"
             "|imagine you",
             RG_LIT, 0, 0, 0.7, CK_NONE, CX_NONE, 0,
             /* every match contains one: */
             "restriction|limit|filter|rules|guidelines|ethics|morals|censorship|boundaries"},
            {"stay_in_character", GE_INJECTION,
             "\\b(?:stay|remain|keep)\\s+in\\s+character\\b|\\bbreak(?:ing)?\\s+character\\b", CI,
             "character", RG_LIT, 0, 0, 0.3, CK_NONE, CX_NONE, 0, 
             /* every match contains one: */ "stay|remain|keep|break"},
            {"dual_response", GE_INJECTION,
             "\\b(?:two|2|both|separate)\\s+(?:different\\s+|separate\\s+)?(?:responses|answers"
             "|paragraphs|outputs)\\b[^\\n]{0,120}?\\b(?:normal|classic|standard|filtered|censored"
             "|jailbroken|unfiltered)\\b",
             CI, "responses|answers|paragraphs|outputs", RG_LIT, 0, 0, 0.6, CK_NONE, CX_NONE, 0, 
             /* every match contains one: */
             "normal|classic|standard|filtered|censored|jailbroken"},
            {"jailbreak_tag", GE_INJECTION,
             "[\\[(](?:\\xF0\\x9F\\x94[\\x92\\x93])?\\s*(?:jailbreak|classic|dan|developer\\s+"
             "mode\\s+output"
             "|normal\\s+output)[^\\])\\n]{0,20}[\\])]",
             CI, "[jailbreak|[classic|[dan|[\xF0\x9F\x94|(\xF0\x9F\x94|normal output|mode output",
             RG_LIT, 0, 0, 0.8, CK_NONE, CX_NONE, 0, NULL},
            {"encoded_instructions", GE_INJECTION,
             "\\b(?:decode|decipher|decrypt|translate|convert)\\b" GAP(30) "\\b(?:base-?64|rot-?13|"
                                                                           "hex(?:adecimal)?|"
                                                                           "binary|morse|caesar)"
                                                                           "\\b" GAP(
                                                                               60) "\\b(?:follow|"
                                                                                   "execute|obey|"
                                                                                   "do\\s+what|"
                                                                                   "carry\\s+out|"
                                                                                   "act\\s+on|"
                                                                                   "respond\\s+to)"
                                                                                   "\\b",
             CI, "base64|base-64|rot13|rot-13|hex|binary|morse|caesar", RG_LIT, 0, 0, 0.7, CK_NONE,
             CX_NONE, 0, NULL},
            {"base64_payload", GE_INJECTION,
             "(?<![A-Za-z0-9+/=_\\-])[A-Za-z0-9+/_\\-]{40,8192}+={0,2}(?![A-Za-z0-9+/=_\\-])", 0,
             NULL, RG_RUN, 40, 0, 0.45, CK_B64TEXT, CX_NONE, 0, NULL},
            {"hex_payload", GE_INJECTION, "(?<![A-Za-z0-9])[0-9A-Fa-f]{48,8192}+(?![A-Za-z0-9])", 0,
             NULL, RG_RUN, 48, 0, 0.45, CK_HEXTEXT, CX_NONE, 0, NULL},

            /* ---------------- invisible text ---------------- */
            {"tag_characters", GE_INVISIBLE,
             "(\\xF0\\x9F\\x8F\\xB4)?(?:\\xF3\\xA0[\\x80\\x81][\\x80-\\xBF]){2,}+", 0, "\xF3\xA0",
             RG_LIT, 0, 0, 0.9, CK_NONE, CX_NONE, 0, NULL},
            {"bidi_controls", GE_INVISIBLE, "\\xE2\\x80[\\xAA-\\xAE]|\\xE2\\x81[\\xA6-\\xA9]", 0,
             "\xE2\x80\xAA|\xE2\x80\xAB|\xE2\x80\xAC|\xE2\x80\xAD|\xE2\x80\xAE|\xE2\x81\xA6|"
             "\xE2\x81\xA7"
             "|\xE2\x81\xA8|\xE2\x81\xA9",
             RG_LIT, 0, 0, 0.6, CK_NONE, CX_NONE, 0, NULL},
            {"zero_width", GE_INVISIBLE,
             "\\xE2\\x80[\\x8B\\x8C]|\\xE2\\x81[\\xA0-\\xA4]|\\xEF\\xBB\\xBF|\\xE1\\xA0\\x8E", 0,
             "\xE2\x80\x8B|\xE2\x80\x8C|\xE2\x81\xA0|\xE2\x81\xA1|\xE2\x81\xA2|\xE2\x81\xA3|"
             "\xE2\x81\xA4"
             "|\xEF\xBB\xBF|\xE1\xA0\x8E",
             RG_LIT, 0, 0, 0.6, CK_NONE, CX_NONE, 3, NULL},

            /* ---------------- data exfiltration through images ---------------- */
            {"markdown_image", GE_EXFIL,
             "!\\[[^\\]\\n]{0,256}\\]\\([ \\t]*<?(https?://[^\\s)>]{1,4096}+)", CI, "![", RG_LIT, 0,
             0, 0.6, CK_EXFIL, CX_NONE, 0, NULL},
            {"html_image", GE_EXFIL,
             "<img\\b[^>]{0,256}?\\bsrc[ \\t]*=[ \\t]*[\"']?(https?://[^\\s\"'>]{1,4096}+)", CI,
             "<img", RG_LIT, 0, 0, 0.6, CK_EXFIL, CX_NONE, 0, NULL},
};

const size_t ifq_guard_nrules = sizeof(ifq_guard_rules) / sizeof(ifq_guard_rules[0]);

/* ---- validation ---- */

/* Decoded bytes look like natural-language text: printable ASCII, mostly
 * letters and spaces, with a few words. */
static int looks_like_text(const unsigned char *b, long n)
{
    if (n < 24)
        return 0;
    long printable = 0, letters = 0, spaces = 0;
    for (long i = 0; i < n; i++) {
        unsigned char c = b[i];
        if ((c >= 32 && c < 127) || c == '\n' || c == '\t')
            printable++;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            letters++;
        if (c == ' ')
            spaces++;
    }
    return printable * 100 >= n * 95 && (letters + spaces) * 100 >= n * 70 && spaces >= 3;
}

/* Decoded text that itself contains injection trigger words is an encoded
 * instruction; decided by the caller (guard_scan.c) with the automaton. */
double ifq_guard_decoded_text_score(const unsigned char *b, long n);

static double check_payload(const char *text, size_t s, size_t e, int hex)
{
    unsigned char buf[6144];
    long n;
    if (hex) {
        size_t len = e - s;
        if (len / 2 > sizeof(buf))
            len = sizeof(buf) * 2;
        n = 0;
        for (size_t i = 0; i + 1 < len; i += 2) {
            int v = 0;
            for (int k = 0; k < 2; k++) {
                char c = text[s + i + (size_t)k];
                v = v * 16 + (c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
            }
            buf[n++] = (unsigned char)v;
        }
    } else {
        size_t len = e - s;
        if (len > sizeof(buf) * 4 / 3)
            len = sizeof(buf) * 4 / 3 / 4 * 4;
        n = ifq_gv_base64_decode(text + s, len, buf, sizeof(buf));
    }
    if (n <= 0 || !looks_like_text(buf, n))
        return 0;
    return ifq_guard_decoded_text_score(buf, n);
}

/* "17031 2202 Rissik St": house numbers are followed by a street name and
 * a street word; phone numbers are not. Looks at the next two words. */
static int followed_by_street(const char *text, size_t len, size_t e)
{
    static const char *const words[] = {
        "st",     "street", "rue",   "ave",      "avenue",  "road",  "rd",    "blvd",
        "lane",   "ln",     "drive", "dr",       "apt",     "suite", "way",   "court",
        "ct",     "place",  "pl",    "strasse",  "weg",     "via",   "calle", "plaza",
        "square", "sq",     "close", "crescent", "terrace", NULL};
    size_t i = e;
    for (int w = 0; w < 3; w++) {
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == ','))
            i++;
        char word[16];
        size_t k = 0;
        while (i < len && k < sizeof(word) - 1 && text[i] != ' ' && text[i] != '\n' &&
               text[i] != ',' && text[i] != '.') {
            char c = text[i++];
            word[k++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        word[k] = 0;
        if (!k)
            return 0;
        for (size_t j = 0; words[j]; j++)
            if (strcmp(word, words[j]) == 0)
                return 1;
        while (i < len && text[i] != ' ' && text[i] != '\n')
            i++;
    }
    return 0;
}

static double check_exfil(const char *u, size_t n)
{
    const char *q = memchr(u, '?', n);
    int has_query = q && memchr(q, '=', n - (size_t)(q - u)) != NULL;
    /* longest run of base64/hex-like characters anywhere in the URL */
    size_t run = 0, best = 0;
    int templ = 0;
    for (size_t i = 0; i < n; i++) {
        char c = u[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '_' || c == '-' || c == '%') {
            if (++run > best)
                best = run;
        } else {
            run = 0;
        }
        if (c == '{' || c == '$' || c == '[')
            templ = 1;
        if (c == '%' && i + 2 < n && u[i + 1] == '7' && (u[i + 2] == 'B' || u[i + 2] == 'b'))
            templ = 1;
    }
    if (!has_query && best < 32)
        return 0; /* an ordinary image link */
    double s = 0.55;
    if (templ || best >= 32)
        s = 0.9;
    return s;
}

double ifq_guard_check(const ifq_grule_t *r, const char *text, size_t len, size_t *s, size_t *e)
{
    const char *m = text + *s;
    size_t n = *e - *s;
    char d[40];
    switch (r->check) {
    case CK_NONE:
        if (r->entity == GE_INVISIBLE && n >= 4 && (unsigned char)m[0] == 0xF0) {
            /* an emoji tag sequence (black flag + up to 7 tags) is a subdivision flag */
            if ((n - 4) / 4 <= 7)
                return 0;
        }
        return r->score;
    case CK_EMAIL:
        return ifq_gv_email(m, n) ? r->score : 0;
    case CK_PHONE:
        return followed_by_street(text, len, *e) ? 0 : ifq_gv_phone_score(m, n);
    case CK_CARD: {
        size_t nd = ifq_gv_digits(m, n, d, sizeof(d));
        if (nd > sizeof(d) || !ifq_gv_card_separators_ok(m, n) || !ifq_gv_luhn(d, nd) ||
            !ifq_gv_card_issuer(d, nd))
            return 0;
        return r->score;
    }
    case CK_IBAN: {
        /* The pattern over-matches (spaces and following words); try each
         * prefix that ends on an alphanumeric, longest first, and keep the
         * one with the country's length, a valid mod-97 and a boundary. */
        size_t ends[48], ne = 0, got = 0;
        for (size_t i = 0; i < n && ne < 48; i++) {
            if (m[i] != ' ' && ++got >= 15)
                ends[ne++] = i + 1;
        }
        for (size_t k = ne; k-- > 0;) {
            size_t abs_end = *s + ends[k];
            if (abs_end < len) {
                unsigned char nx = (unsigned char)text[abs_end];
                if ((nx >= '0' && nx <= '9') || ((nx | 32) >= 'a' && (nx | 32) <= 'z'))
                    continue;
            }
            if (ifq_gv_iban(m, ends[k])) {
                *e = abs_end;
                return r->score;
            }
        }
        return 0;
    }
    case CK_SSN: {
        if (!ifq_gv_ssn(m, n))
            return 0;
        char delim = 0;
        for (size_t i = 0; i < n && !delim; i++)
            if (m[i] < '0' || m[i] > '9')
                delim = m[i];
        return delim == '-' ? 0.6 : delim ? 0.4 : 0.25;
    }
    case CK_IPV4:
        return ifq_gv_ipv4(m, n) ? r->score : 0;
    case CK_IPV6:
        return ifq_gv_ipv6(m, n) ? r->score : 0;
    case CK_BITCOIN:
        return ifq_gv_bitcoin(m, n) ? r->score : 0;
    case CK_JWT:
        return ifq_gv_jwt(m, n) ? r->score : 0;
    case CK_SECRET_VALUE:
        if (n < 8 || ifq_gv_placeholder(m, n) || ifq_gv_char_classes(m, n) < 2 ||
            ifq_gv_entropy(m, n) < 3.0)
            return 0;
        return r->score;
    case CK_TOKEN: {
        /* the random part after the prefix must look random */
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (m[i] == '-' || m[i] == '_' || m[i] == '.')
                k = i + 1;
        if (k > n / 2)
            k = 0;
        if (ifq_gv_placeholder(m + k, n - k) || ifq_gv_entropy(m + k, n - k) < 3.0)
            return 0;
        return r->score;
    }
    case CK_B64TEXT:
        return check_payload(text, *s, *e, 0);
    case CK_HEXTEXT:
        return check_payload(text, *s, *e, 1);
    case CK_EXFIL:
        return check_exfil(m, n);
    }
    return 0;
}

/* ---- context words ---- */

static const char *const ctx_words[][24] = {
    [CX_NONE] = {NULL},
    [CX_PHONE] = {"phone",   "tel",      "mobile",   "cell",   "call", "fax",
                  "desk",    "office",   "contact",  "reach",  "dial", "text",
                  "sms",     "message",  "whatsapp", "answer", "ring", "number",
                  "hotline", "landline", "home",     "work",   NULL},
    [CX_CARD] = {"card", "credit", "debit", "visa", "mastercard", "amex", "payment", "cc", "cvv",
                 "expir", NULL},
    [CX_SSN] = {"ssn", "social security", "social sec", "taxpayer", "tax id", "itin", NULL},
    [CX_IBAN] = {"iban", "bank", "account", "transfer", "wire", "swift", "bic", NULL},
    [CX_IP] = {"ip", "address", "server", "host", "connect", "ping", "addr", NULL},
    [CX_EMAIL] = {"email", "e-mail", "mail", "contact", NULL},
    [CX_MAC] = {"mac", "hardware", "ethernet", "wifi", "wi-fi", "device", NULL},
    [CX_CRYPTO] = {"bitcoin", "btc", "wallet", "crypto", "address", "send", NULL},
};

static const double ctx_boost[] = {
    [CX_NONE] = 0,  [CX_PHONE] = 0.4, [CX_CARD] = 0.1, [CX_SSN] = 0.35,   [CX_IBAN] = 0.05,
    [CX_IP] = 0.25, [CX_EMAIL] = 0.1, [CX_MAC] = 0.25, [CX_CRYPTO] = 0.1,
};

static int has_word(const char *low, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++) {
        if (low[i] != w[0] || memcmp(low + i, w, wl) != 0)
            continue;
        /* a word start: not preceded by a letter */
        if (i > 0 && low[i - 1] >= 'a' && low[i - 1] <= 'z')
            continue;
        return 1;
    }
    return 0;
}

/* Phrases that say the number is some other identifier: no phone boost. */
static const char *const not_phone[] = {
    "license number", "licence number",  "license no",     "licence no",
    "license #",      "passport number", "passport no",    "account number",
    "account no",     "account #",       "order number",   "order no",
    "order #",        "invoice number",  "serial number",  "tracking number",
    "policy number",  "ticket number",   "routing number", "zip code",
    "postal code",    "postcode",        "isbn",           NULL};

double ifq_guard_context(int ctx, const char *text, size_t len, size_t s, size_t e)
{
    if (ctx == CX_NONE)
        return 0;
    char low[80];
    size_t a = s > 48 ? s - 48 : 0;
    size_t b = e + 20 < len ? e + 20 : len;
    size_t n = 0;
    for (size_t i = a; i < b && n < sizeof(low); i++) {
        if (i >= s && i < e) {
            low[n++] = ' ';
            i = e - 1;
            continue;
        }
        unsigned char c = (unsigned char)text[i];
        low[n++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    if (ctx == CX_PHONE)
        for (size_t k = 0; not_phone[k]; k++)
            if (has_word(low, n, not_phone[k]))
                return 0;
    for (size_t k = 0; ctx_words[ctx][k]; k++)
        if (has_word(low, n, ctx_words[ctx][k]))
            return ctx_boost[ctx];
    return 0;
}
/* clang-format on */
