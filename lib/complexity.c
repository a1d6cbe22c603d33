/*
 * complexity.c - request complexity score for the cost router.
 *
 * One bounded pass over the message text counts cue words and phrases (a
 * static keyword table, hashed once into an open-addressing table) and a few
 * character-level signals (code fences, braces, operators next to digits,
 * LaTeX commands, indented lines). The counts are scaled into the inputs of a
 * logistic model whose default weights were fitted offline by
 * tests/eval/routing/fit.py; docs/routing-cost.md explains every feature.
 * Nothing here does I/O or keeps state between calls.
 */
#include "complexity.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

const char *const ifq_complexity_feature_names[IFQ_CX_NFEAT] = {
    "len",    "code",   "code_task",   "math",       "turns",
    "hard_q", "easy_q", "constraints", "max_tokens", "system",
};

/* Default model, fitted by tests/eval/routing/fit.py (logistic regression,
 * L2 0.001, intercept unpenalised) on all of tests/eval/routing/labeled.jsonl
 * and rounded to two decimals; the held-out (cross-validated) figures of the
 * same procedure are in docs/routing-cost.md. max_tokens is left at 0: the
 * set's max_tokens values are synthetic, so their fitted weight would be an
 * artefact. Refit and paste here when the features change. */
static const double default_bias = -1.86;
static const double default_weights[IFQ_CX_NFEAT] = {
    [IFQ_CX_LEN] = 2.90,     [IFQ_CX_CODE] = 0.36,        [IFQ_CX_CODE_TASK] = 3.16,
    [IFQ_CX_MATH] = 5.27,    [IFQ_CX_TURNS] = 0.41,       [IFQ_CX_HARD_Q] = 5.67,
    [IFQ_CX_EASY_Q] = -5.00, [IFQ_CX_CONSTRAINTS] = 1.81, [IFQ_CX_MAX_TOKENS] = 0.00,
    [IFQ_CX_SYSTEM] = -0.47,
};
/* Chosen on held-out scores: the largest saving that keeps large-tier recall
 * at about 0.95 (tests/eval/routing/evaluate.py). */
static const double default_threshold = 0.30;
/* A high-priority request is usually someone waiting on a good answer: lean
 * towards the large tier. Low priority is left neutral. Logit units. */
static const double default_priority_bias[3] = {0.0, 0.5, 0.0};

/* Output tokens assumed when a request does not say (also used for cost
 * estimates in the evaluation). */
#define CX_DEFAULT_MAX_TOKENS 300

/* Scan bounds: per message the head and tail, per request a total. */
#define CX_SCAN_HEAD 8192
#define CX_SCAN_TAIL 2048
#define CX_SCAN_TOTAL 32768
#define CX_MAX_MESSAGES 256
/* Task cues of a long user message: its first and last bytes. */
#define CX_CUE_WINDOW 400

/* ---- keyword table ------------------------------------------------------ */

enum {
    K_HARD = 1 << 0,    /* reasoning: why, explain, compare, design, step by step */
    K_EASY = 1 << 1,    /* simple tasks, anywhere: what is, typos, one sentence */
    K_EASYV = 1 << 2,   /* simple-task verbs, only leading a sentence: list, translate */
    K_CTASK = 1 << 3,   /* asks for code work: implement, debug, refactor, thread safe */
    K_CSYN = 1 << 4,    /* code syntax words: def, printf, struct, nullptr */
    K_MATH = 1 << 5,    /* math terms: prove, derive, integral, probability */
    K_CONS = 1 << 6,    /* constraints: must, at least, without, budget */
    K_UNIT = 1 << 7,    /* units after a number: km, kg, hours, mph */
    K_LENUNIT = 1 << 8, /* output size after a number: "1,500 words", "3 pages" */
    K_QTY = 1 << 9,     /* quantity questions: how many, how long, what time */
    K_LEAD = 1 << 10,   /* words that may precede a leading verb: please, can you */
    K_PREFIX = 1 << 11, /* the first word(s) of a longer phrase: look further */
};

/* Phrases of up to three lowercase words separated by single spaces.
 * Apostrophes and non-ASCII bytes are word characters; hyphens and other
 * punctuation separate words, so "step-by-step" matches "step by step". */
/* clang-format off: keyword lists read better packed */
// clang-format off
static const char *const hard_words[] = {
    "why", "explain", "explanation", "compare", "comparison", "contrast", "design",
    "architect", "architecture", "analyze", "analyse", "analysis", "evaluate", "assess",
    "critique", "critically", "justify", "tradeoff", "tradeoffs", "trade off", "trade offs",
    "step by step", "pros and cons", "how does", "how would", "how could", "what would",
    "what if", "in depth", "in detail", "detailed", "thorough", "thoroughly", "comprehensive",
    "rigorous", "rigorously", "nuanced", "implications", "consequences", "strategy",
    "strategies", "plan", "planning", "argue", "arguments", "counterargument", "steelman",
    "debate", "ethical", "ethics", "moral", "dilemma", "diagnose", "diagnosis", "reasoning",
    "infer", "deduce", "puzzle", "riddle", "paradox", "hypothesis", "investigate", "synthesize",
    "root cause", "scalable", "scalability", "prioritize", "weigh", "interpret",
    "interpretation", "ambiguity", "ambiguous", "walk me through", "think through",
    "is it better", "should i", "should we", "should you", "what's wrong", "what is wrong",
    "convince", "feasible", "realistic", NULL};

static const char *const easy_words[] = {
    "what is", "what's", "who is", "who was", "who wrote", "who invented", "when did",
    "when was", "when is", "where is", "where was", "how do you say", "how do i", "how can i",
    "translation", "summary", "tl dr", "tldr", "yes or no", "typo", "typos", "spelling",
    "grammar", "lowercase", "uppercase", "alphabetical", "alphabetically", "definition",
    "meaning", "synonym", "synonyms", "antonym", "thanks", "thank you", "good morning",
    "capital of", "one word", "one sentence", "briefly", "simple", "quick", "sentiment",
    "bullet points", "title", "headline", "keywords", "acronym", "stand for", "plural of",
    "past tense", "fill in", "pull out", "remind me", NULL};

static const char *const easy_verbs[] = {
    "list", "format", "reformat", "convert", "extract", "summarize", "summarise", "classify",
    "categorize", "categorise", "rewrite", "rephrase", "paraphrase", "translate", "proofread",
    "capitalize", "sort", "alphabetize", "define", "spell", "shorten", "label", "tag",
    "hi", "hello", "hey", NULL};

static const char *const lead_words[] = {
    "please", "pls", "can", "could", "would", "will", "you", "kindly", "just", "now", "also",
    "then", "and", "i", "we", "want", "need", "to", "quickly", "help", "me", "so", "ok",
    "okay", "hi", "hello", "hey", NULL};

static const char *const code_task_words[] = {
    "implement", "implementation", "function", "debug", "debugging", "bug", "bugs", "buggy",
    "refactor", "refactoring", "algorithm", "algorithms", "program", "script", "code",
    "segfault", "segmentation fault", "exception", "traceback", "stack trace", "compile",
    "compiler", "concurrency", "concurrent", "thread", "threads", "thread safe",
    "multithreaded", "deadlock", "race condition", "optimize", "optimise", "performance",
    "time complexity", "recursion", "recursive", "data structure", "endpoint", "unit test",
    "unit tests", "test cases", "memory leak", "crash", "crashes", "regex", "sql", "query",
    "schema", "microservice", "microservices", "mutex", "lock free", "parser", "tokenizer",
    "latency", "throughput", "cache", "queue", "trie", "heap", "graph", "shortest path",
    "backtracking", "scheduler", "hangs", "throws", "intermittently", "intermittent", "flaky",
    "off by one", "doesn't work", "not working", "python", "javascript", "typescript", "java",
    "rust", "golang", "kotlin", "swift", "haskell", "scala", "in c", "in go", "pandas",
    "spark", NULL};

static const char *const code_syntax_words[] = {
    "def", "elif", "printf", "println", "struct", "const", "void", "int", "var", "fn", "func",
    "lambda", "await", "async", "nullptr", "null", "nil", "self", "import", "include",
    "namespace", "typedef", "malloc", "bool", "std", "sizeof", "foreach", "endif", "ifdef",
    "impl", "pub", "mut", "enum", "unsigned", "char", "argv", "stdin", "stdout", "len",
    "dict", "kwargs", "isinstance", "instanceof", "typeof", "undefined", "console",
    "useeffect", "usestate", "goroutine", "chan", NULL};

static const char *const math_words[] = {
    "prove", "proof", "derive", "derivation", "theorem", "lemma", "corollary", "integral",
    "integrate", "derivative", "differentiate", "equation", "equations", "solve",
    "probability", "expected value", "variance", "matrix", "matrices", "eigenvalue",
    "eigenvalues", "eigenvector", "polynomial", "prime", "primes", "irrational", "induction",
    "converge", "converges", "convergence", "modulo", "combinatorics", "permutations",
    "how many ways", "triangle", "radius", "sqrt", "logarithm", "factorial", "gcd",
    "divisible", "integer", "integers", "inequality", "calculus", "gradient", "vector",
    "vectors", "theta", "infinity", "asymptotic", "bayes", "posterior", "standard deviation",
    "calculate", "compute", "maximize", "minimize", "frac", "lim", "sum of", "average",
    "growth rate", NULL};

static const char *const constraint_words[] = {
    "must", "must not", "at least", "at most", "no more than", "no less than", "without",
    "ensure", "require", "requires", "required", "requirement", "requirements", "constraint",
    "constraints", "budget", "deadline", "exactly", "strict", "strictly", "no later than",
    "within", "cannot", "can't", "should not", "shouldn't", "avoid", "maximum", "minimum",
    "while keeping", "but not", NULL};

static const char *const unit_words[] = {
    "km", "kg", "mg", "cm", "mm", "m", "g", "ms", "h", "hr", "hrs", "hour", "hours", "minute",
    "minutes", "min", "second", "seconds", "day", "days", "week", "weeks", "year", "years",
    "mph", "kmh", "kph", "mile", "miles", "meter", "meters", "metres", "liter", "liters",
    "litres", "l", "ml", "kwh", "kw", "percent", "dollars", "euros", "ft", "feet", "inches",
    "lb", "lbs", "degrees", "workers", "people", "machines", "items", "units", NULL};

static const char *const length_unit_words[] = {
    "words", "word", "pages", "page", "paragraphs", "chapters", "lines", "slides", NULL};

static const char *const quantity_words[] = {
    "how many", "how much", "how long", "how far", "how fast", "what time", "at what",
    "how old", NULL};

static const struct {
    unsigned mask;
    const char *const *words;
} keyword_lists[] = {
    {K_HARD, hard_words},       {K_EASY, easy_words},         {K_EASYV, easy_verbs},
    {K_LEAD, lead_words},       {K_CTASK, code_task_words},   {K_CSYN, code_syntax_words},
    {K_MATH, math_words},       {K_CONS, constraint_words},   {K_UNIT, unit_words},
    {K_LENUNIT, length_unit_words}, {K_QTY, quantity_words},
};
// clang-format on

#define CX_TABLE_SIZE 2048 /* power of two, more than twice the phrases */

typedef struct {
    uint64_t key; /* 0: empty */
    unsigned mask;
} cx_slot_t;

/* Written once under pthread_once, read-only afterwards. Phrases are
 * identified by a 64-bit hash alone: a false match needs a collision with
 * one of ~600 phrases, about one in 10^16 per word. */
static cx_slot_t table[CX_TABLE_SIZE];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* Combines the hash of a phrase so far with the next word's hash. */
static inline uint64_t cx_combine(uint64_t a, uint64_t b)
{
    uint64_t h = a * 0x9e3779b97f4a7c15ULL;
    h ^= (h >> 31) ^ b;
    return h * 0xff51afd7ed558ccdULL;
}

static inline size_t cx_slot(uint64_t key)
{
    return (size_t)((key ^ (key >> 29) ^ (key >> 47)) & (CX_TABLE_SIZE - 1));
}

static void cx_insert(uint64_t key, unsigned mask)
{
    if (key == 0)
        key = 1;
    size_t i = cx_slot(key);
    while (table[i].key && table[i].key != key)
        i = (i + 1) & (CX_TABLE_SIZE - 1);
    table[i].key = key;
    table[i].mask |= mask;
}

static inline unsigned cx_lookup(uint64_t key)
{
    if (key == 0)
        key = 1;
    size_t i = cx_slot(key);
    while (table[i].key) {
        if (table[i].key == key)
            return table[i].mask;
        i = (i + 1) & (CX_TABLE_SIZE - 1);
    }
    return 0;
}

/* Hashes every phrase exactly as the scanner hashes the words it reads. */
static void cx_build_table(void)
{
    for (size_t l = 0; l < IFQ_ARRAY_LEN(keyword_lists); l++) {
        for (const char *const *w = keyword_lists[l].words; *w; w++) {
            const char *p = *w;
            uint64_t phrase = 0;
            int words = 0;
            while (*p) {
                uint64_t h = FNV_OFFSET;
                while (*p && *p != ' ') {
                    h = (h ^ (unsigned char)*p) * FNV_PRIME;
                    p++;
                }
                /* Mark each proper prefix so the scanner only looks up a
                 * two- or three-word phrase after a known beginning. */
                if (words > 0)
                    cx_insert(phrase, K_PREFIX);
                phrase = words == 0 ? h : cx_combine(phrase, h);
                words++;
                while (*p == ' ')
                    p++;
            }
            cx_insert(phrase, keyword_lists[l].mask);
        }
    }
}

/* ---- the scanner -------------------------------------------------------- */

typedef struct {
    int cues; /* count task cues in this text (user messages only) */
    /* word state */
    uint64_t h; /* hash of the word being read */
    int wlen;
    size_t wstart;  /* offset of the word being read in the text */
    uint64_t p1;    /* hash of the previous word of the sentence */
    uint64_t pb;    /* hash of the previous two words as a phrase */
    int p1_prefix;  /* p1 begins a known phrase (0 also at a sentence start) */
    int pb_prefix;  /* pb begins a known phrase */
    int lead_ok;    /* a leading verb here would lead its sentence */
    size_t num_end; /* offset just after the last digit run, SIZE_MAX: none */
    int in_number;
    int in_fence; /* inside a ``` block: only code syntax counts */
    /* character state */
    unsigned char prev;    /* previous byte */
    unsigned char prev_ns; /* previous non-space byte */
    int op_pending;        /* an operator followed an alphanumeric */
    int op_digit;          /* ... and that alphanumeric was a digit */
    int ticks;             /* backticks in a row */
    int line_start;
    int indent;
    /* counts */
    int hard, easy, ctask, csyn, math_terms, cons, units, qty, numbers;
    int fences, codesym, indented, latex, unimath, expr;
    size_t scanned;
} cx_scan_t;

static void cx_scan_reset_segment(cx_scan_t *s)
{
    s->h = FNV_OFFSET;
    s->wlen = 0;
    s->p1_prefix = s->pb_prefix = 0;
    s->lead_ok = 1;
    s->num_end = SIZE_MAX;
    s->in_number = 0;
    s->in_fence = 0;
    s->prev = '\n';
    s->prev_ns = ' ';
    s->op_pending = 0;
    s->ticks = 0;
    s->line_start = 1;
    s->indent = 0;
}

static void cx_end_word(cx_scan_t *s)
{
    uint64_t h = s->h;
    unsigned one = cx_lookup(h);
    unsigned m = one & ~(unsigned)(K_EASYV | K_LEAD | K_UNIT | K_LENUNIT);
    uint64_t bi = 0;
    unsigned mbi = 0;
    if (s->p1_prefix) {
        bi = cx_combine(s->p1, h);
        mbi = cx_lookup(bi);
        m |= mbi;
    }
    if (s->pb_prefix)
        m |= cx_lookup(cx_combine(s->pb, h));
    /* "60 mph", "3kg": a unit right after a number. */
    int after_number = s->num_end != SIZE_MAX && s->wstart <= s->num_end + 1;
    if (s->in_fence) {
        if (m & K_CSYN)
            s->csyn++;
    } else {
        if (after_number && (one & K_UNIT))
            s->units++;
        if (m & K_CSYN)
            s->csyn++;
        if (s->cues) {
            if ((one & K_EASYV) && s->lead_ok)
                s->easy++;
            if (after_number && (one & K_LENUNIT))
                s->cons++;
            s->hard += (m & K_HARD) != 0;
            s->easy += (m & K_EASY) != 0;
            s->ctask += (m & K_CTASK) != 0;
            s->math_terms += (m & K_MATH) != 0;
            s->cons += (m & K_CONS) != 0;
            s->qty += (m & K_QTY) != 0;
        }
    }
    s->lead_ok = s->lead_ok && (one & K_LEAD);
    s->pb = bi;
    s->pb_prefix = s->p1_prefix && (mbi & K_PREFIX);
    s->p1 = h;
    s->p1_prefix = (one & K_PREFIX) != 0;
    s->h = FNV_OFFSET;
    s->wlen = 0;
}

static inline int cx_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static inline int cx_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A new sentence: phrases do not continue across it and a leading verb may
 * follow. */
static inline void cx_sentence(cx_scan_t *s)
{
    s->p1_prefix = s->pb_prefix = 0;
    s->lead_ok = 1;
}

/* Word characters: ASCII letters and every byte >= 0x80 (so UTF-8 words
 * stay whole: "Bugün" is one word, not "bug"); the apostrophe too, inside a
 * word. */
static inline int cx_word_start(unsigned char c)
{
    return ((c | 32) >= 'a' && (c | 32) <= 'z') || c >= 0x80;
}

static inline int cx_word_char(unsigned char c)
{
    return cx_word_start(c) || c == '\'';
}

/* Mathematical symbols in UTF-8, at a lead byte: U+2200..U+22FF operators,
 * ± ² ³, × ÷, π. */
static inline int cx_unimath(const unsigned char *t, size_t i, size_t n)
{
    if (i + 1 >= n)
        return 0;
    unsigned char c = t[i], d = t[i + 1];
    return (c == 0xE2 && d >= 0x88 && d <= 0x8B) ||
           (c == 0xC2 && (d == 0xB1 || d == 0xB2 || d == 0xB3)) ||
           (c == 0xC3 && (d == 0x97 || d == 0xB7)) || (c == 0xCF && d == 0x80);
}

static void cx_scan(cx_scan_t *s, const unsigned char *t, size_t n)
{
    cx_scan_reset_segment(s);
    size_t i = 0;
    while (i < n) {
        unsigned char c = t[i];

        /* A word: the common case, in a tight loop. */
        if (cx_word_start(c)) {
            if (s->in_number) {
                s->in_number = 0;
                s->num_end = i;
            }
            if (s->line_start) {
                if (s->indent >= 4)
                    s->indented++;
                s->line_start = 0;
            }
            s->ticks = 0;
            if (s->op_pending && !s->in_fence) {
                /* a letter after an operator: "2 * x" counts when a digit came before */
                if (c < 0x80)
                    s->expr += s->op_digit;
                s->op_pending = 0;
            }
            s->wstart = i;
            uint64_t h = FNV_OFFSET;
            unsigned char last;
            do {
                last = t[i] < 0x80 ? (unsigned char)(t[i] | 32) : t[i];
                if (last >= 0x80 && cx_unimath(t, i, n))
                    s->unimath++;
                h = (h ^ last) * FNV_PRIME;
                i++;
            } while (i < n && cx_word_char(t[i]));
            s->h = h;
            s->wlen = 1;
            s->prev = last;
            if (!s->in_fence)
                s->prev_ns = last;
            cx_end_word(s);
            continue;
        }

        if (cx_digit(c)) {
            if (!s->in_number && !s->in_fence)
                s->numbers++;
            s->in_number = 1;
        } else if (s->in_number) {
            s->in_number = 0;
            s->num_end = i;
            if (c == '%' && !s->in_fence)
                s->units++;
        }

        /* Line structure: indented code lines. */
        if (c == '\n') {
            s->line_start = 1;
            s->indent = 0;
            cx_sentence(s);
        } else if (s->line_start) {
            if (c == ' ')
                s->indent++;
            else if (c == '\t')
                s->indent += 4;
            else {
                if (s->indent >= 4)
                    s->indented++;
                s->line_start = 0;
            }
        }

        /* Code fences; their content counts as code, not as cues. */
        if (c == '`') {
            if (++s->ticks == 3) {
                s->fences++;
                s->in_fence = !s->in_fence;
            }
        } else {
            s->ticks = 0;
        }

        switch (c) {
        case '{':
        case '}':
        case ';':
            s->codesym++;
            break;
        case '=':
            if (s->prev == '=' || s->prev == '!' || s->prev == '+' || s->prev == '-')
                s->codesym++;
            break;
        case '>':
            if (s->prev == '-' || s->prev == '=')
                s->codesym++;
            break;
        case ':':
            if (s->prev == ':')
                s->codesym++;
            else if (s->cues)
                cx_sentence(s); /* "Translate the following: ..." */
            break;
        case '&':
        case '|':
            if (s->prev == c)
                s->codesym++;
            break;
        case '(':
            /* Big-O notation: "O(n log n)". */
            if (s->prev == 'o' && (i < 2 || !cx_alnum(t[i - 2])) && s->cues && !s->in_fence)
                s->ctask++;
            break;
        case ')':
            if (s->prev == '(')
                s->codesym++;
            break;
        case '$':
            if (i + 1 < n && cx_digit(t[i + 1]) && !s->in_fence)
                s->units++;
            break;
        case '\\':
            if (i + 1 < n && ((t[i + 1] | 32) >= 'a' && (t[i + 1] | 32) <= 'z'))
                s->latex++;
            break;
        case '.':
        case '?':
        case '!':
            if (!(c == '.' && i + 1 < n && cx_digit(t[i + 1]))) /* not "3.5" */
                cx_sentence(s);
            break;
        default:
            break;
        }

        /* Operators between operands, at least one of them a digit: "3 + 4",
         * "x^2", "2x = 5". '^' alone is rare enough in prose to count. */
        if (c != ' ' && c != '\t' && !s->in_fence) {
            if (s->op_pending) {
                if (cx_alnum(c) || c == '(')
                    s->expr += (s->op_digit || cx_digit(c)) ? 1 : 0;
                s->op_pending = 0;
            }
            if (c == '^') {
                s->expr++;
            } else if ((c == '+' || c == '*' || c == '/' || c == '=' || c == '<' || c == '>') &&
                       (cx_alnum(s->prev_ns) || s->prev_ns == ')')) {
                s->op_pending = 1;
                s->op_digit = cx_digit(s->prev_ns);
            }
            s->prev_ns = c;
        }
        s->prev = c;
        i++;
    }
    s->scanned += n;
}

/* Scans [from, to) of a text within the per-request budget. */
static void cx_scan_range(cx_scan_t *s, const unsigned char *t, size_t from, size_t to)
{
    size_t budget = s->scanned < CX_SCAN_TOTAL ? CX_SCAN_TOTAL - s->scanned : 0;
    if (to <= from || budget == 0)
        return;
    cx_scan(s, t + from, to - from < budget ? to - from : budget);
}

/* Scans one message text within the per-message and per-request bounds.
 * In a long user message the task is stated at its start or its end ("Fix
 * the typos in this paragraph: ...", "... Which clauses are risky?") and the
 * middle is material to work on, so task cues count only in the first and
 * last CX_CUE_WINDOW bytes; code and math content count everywhere. */
static void cx_scan_text(cx_scan_t *s, const char *text, size_t len)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t pieces[2][2] = {{0, len}, {len, len}};
    if (len > CX_SCAN_HEAD + CX_SCAN_TAIL) {
        pieces[0][1] = CX_SCAN_HEAD;
        pieces[1][0] = len - CX_SCAN_TAIL;
    }
    int cues = s->cues;
    size_t quiet_from = len, quiet_to = len;
    if (cues && len > 2 * CX_CUE_WINDOW) {
        quiet_from = CX_CUE_WINDOW;
        quiet_to = len - CX_CUE_WINDOW;
    }
    for (int p = 0; p < 2; p++) {
        size_t a = pieces[p][0], b = pieces[p][1];
        size_t qa = a > quiet_from ? a : quiet_from, qb = b < quiet_to ? b : quiet_to;
        if (qa >= qb) { /* no quiet part in this piece */
            cx_scan_range(s, t, a, b);
            continue;
        }
        cx_scan_range(s, t, a, qa);
        s->cues = 0;
        cx_scan_range(s, t, qa, qb);
        s->cues = cues;
        cx_scan_range(s, t, qb, b);
    }
}

/* Scans a message content: a string, or an array of parts of which the text
 * parts count (images and audio do not). Returns the content's text bytes.
 * s NULL: only counts the bytes. */
static size_t cx_content(cx_scan_t *s, const json_t *content)
{
    if (json_is_string(content)) {
        size_t len = json_string_length(content);
        if (s)
            cx_scan_text(s, json_string_value(content), len);
        return len;
    }
    size_t total = 0;
    if (json_is_array(content)) {
        size_t n = json_array_size(content);
        for (size_t i = 0; i < n && i < CX_MAX_MESSAGES; i++) {
            const json_t *part = json_array_get(content, i);
            const json_t *text = json_is_string(part) ? part : json_object_get(part, "text");
            if (json_is_string(text)) {
                size_t len = json_string_length(text);
                if (s)
                    cx_scan_text(s, json_string_value(text), len);
                total += len;
            }
        }
    }
    return total;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* v / max, at most 1. */
static double sat(double v, double max)
{
    return v >= max ? 1.0 : v / max;
}

void ifq_complexity_measure(const json_t *request, ifq_complexity_raw_t *out)
{
    pthread_once(&table_once, cx_build_table);
    memset(out, 0, sizeof(*out));
    out->max_tokens = -1;
    cx_scan_t s;
    memset(&s, 0, sizeof(s));

    const json_t *body = json_object_get(request, "body");
    size_t bytes = 0, sys_bytes = 0;
    const json_t *messages = json_object_get(body, "messages");
    if (json_is_array(messages)) {
        /* Newest first: the last message is the one being answered, so it
         * gets the scan budget before older context does. A system prompt
         * describes behaviour, not the task: it counts by its length only
         * (a long support-bot prompt does not make "what are your opening
         * hours?" hard). Task cues count in user messages only: an assistant
         * turn is the model's own wording, though its code and math count. */
        size_t n = json_array_size(messages);
        size_t first = n > CX_MAX_MESSAGES ? n - CX_MAX_MESSAGES : 0;
        for (size_t i = n; i-- > first;) {
            const json_t *m = json_array_get(messages, i);
            const char *role = json_string_value(json_object_get(m, "role"));
            const json_t *content = json_object_get(m, "content");
            if (role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)) {
                size_t b = cx_content(NULL, content);
                bytes += b;
                sys_bytes += b;
                continue;
            }
            s.cues = !role || strcmp(role, "user") == 0;
            bytes += cx_content(&s, content);
            out->turns++;
        }
    } else {
        /* /v1/completions (prompt) and /v1/embeddings (input). */
        const json_t *p = json_object_get(body, "prompt");
        if (!p)
            p = json_object_get(body, "input");
        s.cues = 1;
        bytes += cx_content(&s, p);
        out->turns = p ? 1 : 0;
    }

    const json_t *mt = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(mt))
        mt = json_object_get(body, "max_tokens");
    if (json_is_integer(mt) && json_integer_value(mt) >= 0)
        out->max_tokens =
            json_integer_value(mt) > 100000000 ? 100000000 : (long)json_integer_value(mt);

    const char *prio = json_string_value(json_object_get(request, "priority"));
    out->priority = prio && strcmp(prio, "high") == 0  ? 1
                    : prio && strcmp(prio, "low") == 0 ? 2
                                                       : 0;
    const char *tier =
        json_string_value(json_object_get(json_object_get(request, "metadata"), "tier"));
    out->tier_hint = tier && strcmp(tier, "small") == 0   ? 1
                     : tier && strcmp(tier, "large") == 0 ? 2
                                                          : 0;

    out->est_tokens = (long)((bytes + 3) / 4);
    out->system_tokens = (long)((sys_bytes + 3) / 4);
    out->code_cues = s.ctask;
    out->hard_cues = s.hard;
    out->easy_cues = s.easy;
    out->constraint_cues = s.cons;
    out->fences = s.fences;
    out->scanned_bytes = s.scanned;

    /* Code and math content: noisy-OR of their signals, each saturating, so
     * one strong signal is enough and more signals add less and less. */
    double symdens = s.scanned ? (double)s.codesym / (double)s.scanned : 0.0;
    double code = 1.0 - (1.0 - 0.6 * (s.fences > 0)) * (1.0 - 0.6 * sat(s.csyn, 5)) *
                            (1.0 - 0.6 * sat(symdens, 0.04)) * (1.0 - 0.4 * sat(s.indented, 5));
    double math = 1.0 - (1.0 - 0.7 * sat(s.math_terms, 2)) *
                            (1.0 - 0.7 * sat(s.latex + s.unimath, 3)) *
                            (1.0 - 0.6 * sat(s.expr, 3)) * (1.0 - 0.4 * sat(s.units, 3)) *
                            (1.0 - 0.5 * (s.qty > 0 && s.numbers >= 2));
    long mtok = out->max_tokens >= 0 ? out->max_tokens : CX_DEFAULT_MAX_TOKENS;
    long conv_tokens = out->est_tokens - out->system_tokens;

    out->x[IFQ_CX_LEN] = clamp01(log2(1.0 + (double)conv_tokens) / 14.0);
    out->x[IFQ_CX_CODE] = clamp01(code);
    out->x[IFQ_CX_CODE_TASK] = sat(s.ctask, 3);
    out->x[IFQ_CX_MATH] = clamp01(math);
    out->x[IFQ_CX_TURNS] = out->turns > 1 ? sat(out->turns - 1, 8) : 0.0;
    out->x[IFQ_CX_HARD_Q] = sat(s.hard, 3);
    out->x[IFQ_CX_EASY_Q] = sat(s.easy, 3);
    out->x[IFQ_CX_CONSTRAINTS] = sat(s.cons, 6);
    out->x[IFQ_CX_MAX_TOKENS] = clamp01(log2(1.0 + (double)mtok) / 12.0);
    out->x[IFQ_CX_SYSTEM] = clamp01(log2(1.0 + (double)out->system_tokens) / 12.0);
}

/* ---- the model ---------------------------------------------------------- */

double ifq_complexity_eval(const ifq_complexity_cfg_t *cfg, const ifq_complexity_raw_t *raw,
                           double *logit, int *large, const char **reason)
{
    double z = cfg->bias + cfg->priority_bias[raw->priority < 3 ? raw->priority : 0];
    for (int i = 0; i < IFQ_CX_NFEAT; i++)
        z += cfg->weights[i] * raw->x[i];
    double score = 1.0 / (1.0 + exp(-z));
    int big = score >= cfg->threshold;
    const char *why = big ? "score>=threshold" : "score<threshold";
    if (cfg->honor_tier_hint && raw->tier_hint) {
        big = raw->tier_hint == 2;
        why = big ? "metadata.tier=large" : "metadata.tier=small";
    }
    if (logit)
        *logit = z;
    if (large)
        *large = big;
    if (reason)
        *reason = why;
    return score;
}

static double round4(double v)
{
    return round(v * 10000.0) / 10000.0 + 0.0; /* + 0.0 turns -0 into 0 */
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v ? json_object_set_new(obj, key, v) : -1;
}

int ifq_complexity_score(const ifq_complexity_cfg_t *cfg, const json_t *request,
                         ifq_complexity_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!cfg || !json_is_object(request))
        return IFQ_ERR_INVALID;
    ifq_complexity_raw_t raw;
    ifq_complexity_measure(request, &raw);
    out->score = ifq_complexity_eval(cfg, &raw, &out->logit, &out->large, &out->reason);

    static const char *const prio_names[3] = {"normal", "high", "low"};
    const char *qtype = raw.hard_cues > raw.easy_cues   ? "reasoning"
                        : raw.easy_cues > raw.hard_cues ? "simple"
                        : raw.hard_cues > 0             ? "mixed"
                                                        : "none";
    json_t *f = json_object();
    json_t *contrib = json_object();
    int rc = f && contrib ? 0 : -1;
    rc |= set_new(f, "est_tokens", json_integer(raw.est_tokens));
    rc |= set_new(f, "system_tokens", json_integer(raw.system_tokens));
    rc |=
        set_new(f, "max_tokens", raw.max_tokens >= 0 ? json_integer(raw.max_tokens) : json_null());
    rc |= set_new(f, "turns", json_integer(raw.turns));
    rc |= set_new(f, "code", json_real(round4(raw.x[IFQ_CX_CODE])));
    rc |= set_new(f, "code_cues", json_integer(raw.code_cues));
    rc |= set_new(f, "math", json_real(round4(raw.x[IFQ_CX_MATH])));
    rc |= set_new(f, "question_type", json_string(qtype));
    rc |= set_new(f, "hard_cues", json_integer(raw.hard_cues));
    rc |= set_new(f, "easy_cues", json_integer(raw.easy_cues));
    rc |= set_new(f, "constraints", json_integer(raw.constraint_cues));
    rc |= set_new(f, "tier_hint",
                  raw.tier_hint == 1   ? json_string("small")
                  : raw.tier_hint == 2 ? json_string("large")
                                       : json_null());
    rc |= set_new(f, "priority", json_string(prio_names[raw.priority]));
    rc |= set_new(f, "logit", json_real(round4(out->logit)));
    for (int i = 0; i < IFQ_CX_NFEAT && contrib; i++)
        rc |= set_new(contrib, ifq_complexity_feature_names[i],
                      json_real(round4(cfg->weights[i] * raw.x[i])));
    if (f && contrib) {
        rc |= json_object_set_new(f, "contrib", contrib);
        contrib = NULL;
    }
    if (rc != 0) {
        json_decref(f);
        json_decref(contrib);
        return IFQ_ERR_NOMEM;
    }
    out->features = f;
    return IFQ_OK;
}

/* ---- configuration ------------------------------------------------------ */

static void cfg_defaults(ifq_complexity_cfg_t *c)
{
    memset(c, 0, sizeof(*c));
    c->threshold = default_threshold;
    c->bias = default_bias;
    memcpy(c->weights, default_weights, sizeof(c->weights));
    memcpy(c->priority_bias, default_priority_bias, sizeof(c->priority_bias));
    c->honor_tier_hint = 1;
}

static int cfg_number(const json_t *v, double lo, double hi, double *out)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return -1;
    *out = d;
    return 0;
}

/* Weights and biases are logit units; anything beyond this is a typo. */
#define CX_MAX_WEIGHT 100.0

int ifq_complexity_cfg_parse(const json_t *section, ifq_complexity_cfg_t *out, char *errstr,
                             size_t errstr_size)
{
    cfg_defaults(out);
    if (!section || json_is_null(section))
        return IFQ_OK;
    ifq_complexity_cfg_t c;
    cfg_defaults(&c);
    if (!json_is_object(section)) {
        ifq_fmt(errstr, errstr_size, "must be a mapping");
        return IFQ_ERR_CONFIG;
    }
    const char *key;
    json_t *val;
    /* jansson's iteration API is not const-correct; nothing is modified. */
    json_object_foreach((json_t *)section, key, val)
    {
        if (strcmp(key, "threshold") == 0) {
            if (cfg_number(val, 0.0, 1.0, &c.threshold) < 0) {
                ifq_fmt(errstr, errstr_size, "threshold: must be a number between 0 and 1");
                return IFQ_ERR_CONFIG;
            }
        } else if (strcmp(key, "bias") == 0) {
            if (cfg_number(val, -CX_MAX_WEIGHT, CX_MAX_WEIGHT, &c.bias) < 0) {
                ifq_fmt(errstr, errstr_size, "bias: must be a number between -100 and 100");
                return IFQ_ERR_CONFIG;
            }
        } else if (strcmp(key, "weights") == 0) {
            if (!json_is_object(val)) {
                ifq_fmt(errstr, errstr_size, "weights: must be a mapping of feature to number");
                return IFQ_ERR_CONFIG;
            }
            const char *fk;
            json_t *fv;
            json_object_foreach(val, fk, fv)
            {
                int idx = -1;
                for (int i = 0; i < IFQ_CX_NFEAT; i++)
                    if (strcmp(fk, ifq_complexity_feature_names[i]) == 0)
                        idx = i;
                if (idx < 0) {
                    ifq_fmt(errstr, errstr_size,
                            "weights.%s: unknown feature (known: len, code, code_task, math, "
                            "turns, hard_q, easy_q, constraints, max_tokens, system)",
                            fk);
                    return IFQ_ERR_CONFIG;
                }
                if (cfg_number(fv, -CX_MAX_WEIGHT, CX_MAX_WEIGHT, &c.weights[idx]) < 0) {
                    ifq_fmt(errstr, errstr_size,
                            "weights.%s: must be a number between -100 and 100", fk);
                    return IFQ_ERR_CONFIG;
                }
            }
        } else if (strcmp(key, "priority_bias") == 0) {
            if (!json_is_object(val)) {
                ifq_fmt(errstr, errstr_size,
                        "priority_bias: must be a mapping of high|normal|low to number");
                return IFQ_ERR_CONFIG;
            }
            const char *pk;
            json_t *pv;
            json_object_foreach(val, pk, pv)
            {
                int idx = strcmp(pk, "normal") == 0 ? 0
                          : strcmp(pk, "high") == 0 ? 1
                          : strcmp(pk, "low") == 0  ? 2
                                                    : -1;
                if (idx < 0) {
                    ifq_fmt(errstr, errstr_size,
                            "priority_bias.%s: unknown priority (known: high, normal, low)", pk);
                    return IFQ_ERR_CONFIG;
                }
                if (cfg_number(pv, -CX_MAX_WEIGHT, CX_MAX_WEIGHT, &c.priority_bias[idx]) < 0) {
                    ifq_fmt(errstr, errstr_size,
                            "priority_bias.%s: must be a number between -100 and 100", pk);
                    return IFQ_ERR_CONFIG;
                }
            }
        } else if (strcmp(key, "honor_tier_hint") == 0) {
            if (!json_is_boolean(val)) {
                ifq_fmt(errstr, errstr_size, "honor_tier_hint: must be true or false");
                return IFQ_ERR_CONFIG;
            }
            c.honor_tier_hint = json_is_true(val);
        } else if (strcmp(key, "strategy") == 0 || strcmp(key, "small") == 0 ||
                   strcmp(key, "large") == 0 || strcmp(key, "description") == 0 ||
                   strcmp(key, "health_aware") == 0) {
            /* The router's keys: validated by the router. */
        } else {
            ifq_fmt(errstr, errstr_size,
                    "%s: unknown key (known: threshold, bias, weights, priority_bias, "
                    "honor_tier_hint, strategy, small, large, description, health_aware)",
                    key);
            return IFQ_ERR_CONFIG;
        }
    }
    *out = c;
    return IFQ_OK;
}
