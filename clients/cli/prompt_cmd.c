/*
 * prompt_cmd.c - `inferq prompt ...`, the operator's side of prompt
 * templates:
 *
 *   inferq prompt push ID FILE                    store FILE ('-' = stdin) as the next version
 *   inferq prompt list [--json]                   every template, its latest version and labels
 *   inferq prompt show ID [--version N | --label L] [--raw]
 *   inferq prompt label ID LABEL VERSION          point LABEL at VERSION
 *   inferq prompt render ID [--version N | --label L] [--var K=V]...
 *   inferq prompt render --file FILE [--var K=V]...
 *                                                 dry run: print the body the broker would send
 *
 * Everything goes through lib/prompt.c, so `render` shows exactly what the
 * broker would produce for the same prompt field.
 */
#include "prompt_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prompt.h"

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("inferq prompt: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nusage:\n"
          "  inferq prompt push ID FILE\n"
          "  inferq prompt list [--json]\n"
          "  inferq prompt show ID [--version N | --label L] [--raw]\n"
          "  inferq prompt label ID LABEL VERSION\n"
          "  inferq prompt render ID [--version N | --label L] [--var K=V]...\n"
          "  inferq prompt render --file FILE [--var K=V]...\n",
          stderr);
    return 2;
}

static int refused(const char *what, int rc, const char *why)
{
    fprintf(stderr, "inferq prompt %s: %s\n", what, why);
    return rc == IFQ_ERR_IO ? 3 : 1; /* 3: Redis unreachable (docs/cli.md) */
}

/* Reads a whole file ('-': stdin) of at most IFQ_PROMPT_MAX_TEMPLATE bytes.
 * Returns a buffer (caller frees) or NULL with a message printed. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "inferq prompt: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = IFQ_PROMPT_MAX_TEMPLATE + 1; /* one more byte tells "too big" */
    char *buf = malloc(cap + 1);
    size_t n = 0;
    if (buf) {
        size_t r;
        while (n < cap && (r = fread(buf + n, 1, cap - n, f)) > 0)
            n += r;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf || bad || n > IFQ_PROMPT_MAX_TEMPLATE) {
        if (!buf)
            fprintf(stderr, "inferq prompt: out of memory\n");
        else if (bad)
            fprintf(stderr, "inferq prompt: %s: read error\n", path);
        else
            fprintf(stderr, "inferq prompt: %s: larger than %u bytes\n", path,
                    (unsigned)IFQ_PROMPT_MAX_TEMPLATE);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
}

static ifq_prompts_t *open_store(ifq_config_t *cfg)
{
    char errstr[512];
    ifq_prompts_t *p = ifq_prompts_connect(cfg->redis_url, cfg->prefix, errstr, sizeof(errstr));
    if (!p)
        fprintf(stderr, "inferq prompt: %s\n", errstr);
    return p;
}

/* Parses a positive version number; 0 on error. */
static int parse_version(const char *s)
{
    int64_t v;
    if (ifq_parse_i64(s, &v) != IFQ_OK || v < 1 || v > IFQ_PROMPT_MAX_VERSIONS)
        return 0;
    return (int)v;
}

/* Options shared by show and render. */
typedef struct {
    int version;
    const char *label;
    int raw;
    int json;
    const char *file;
    json_t *vars;
} opts_t;

/* Parses the options after the subcommand; GNU getopt moves the positional
 * arguments to the end: they are argv[*first .. argc). */
static int parse_opts(int argc, char **argv, opts_t *o, int *first)
{
    static const struct option lopts[] = {{"version", required_argument, NULL, 'v'},
                                          {"label", required_argument, NULL, 'l'},
                                          {"raw", no_argument, NULL, 'r'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"file", required_argument, NULL, 'f'},
                                          {"var", required_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    int c;
    optind = 2; /* argv[0] "prompt", argv[1] the subcommand */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (c) {
        case 'v':
            if (!(o->version = parse_version(optarg)))
                return usage_error("--version wants a positive integer, got '%s'", optarg);
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'r':
            o->raw = 1;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'f':
            o->file = optarg;
            break;
        case 'V': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return usage_error("--var wants NAME=VALUE, got '%s'", optarg);
            char name[IFQ_PROMPT_MAX_VAR_NAME + 2];
            size_t n = (size_t)(eq - optarg);
            if (n >= sizeof(name))
                return usage_error("--var: name too long in '%.80s'", optarg);
            memcpy(name, optarg, n);
            name[n] = '\0';
            if (json_object_get(o->vars, name))
                return usage_error("--var %s given twice", name);
            json_t *val = json_string(eq + 1);
            if (!val)
                return usage_error("--var %s: value is not valid UTF-8", name);
            json_object_set_new(o->vars, name, val);
            break;
        }
        default:
            return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (o->version && o->label)
        return usage_error("give --version or --label, not both");
    *first = optind;
    return 0;
}

static int cmd_push(ifq_config_t *cfg, int argc, char **argv)
{
    if (argc != 4)
        return usage_error("push wants ID FILE");
    size_t len;
    char *text = read_file(argv[3], &len);
    if (!text)
        return 2;
    ifq_prompts_t *p = open_store(cfg);
    if (!p) {
        free(text);
        return 3; /* Redis unreachable */
    }
    char errstr[512];
    int version = 0, created = 0;
    int rc = ifq_prompts_push(p, argv[2], text, len, &version, &created, errstr, sizeof(errstr));
    free(text);
    ifq_prompts_destroy(p);
    if (rc)
        return refused("push", rc, errstr);
    printf("%d\n", version);
    if (created)
        fprintf(stderr, "inferq prompt: %s version %d created\n", argv[2], version);
    else
        fprintf(stderr, "inferq prompt: %s unchanged: identical to version %d (the latest)\n",
                argv[2], version);
    return 0;
}

static void fmt_time(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, size, "-");
}

static int cmd_list(ifq_config_t *cfg, int argc, char **argv)
{
    opts_t o = {0};
    int first = 0;
    o.vars = json_object();
    int bad = parse_opts(argc, argv, &o, &first);
    json_decref(o.vars);
    if (bad)
        return bad;
    if (first != argc)
        return usage_error("list takes no arguments, got '%s'", argv[first]);
    ifq_prompts_t *p = open_store(cfg);
    if (!p)
        return 3; /* Redis unreachable */
    char errstr[512];
    json_t *list = ifq_prompts_list(p, errstr, sizeof(errstr));
    ifq_prompts_destroy(p);
    if (!list)
        return refused("list", IFQ_ERR_IO, errstr);
    if (o.json) {
        print_json(list);
    } else {
        printf("%-32s %7s  %-20s  %s\n", "ID", "LATEST", "UPDATED (UTC)", "LABELS");
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            char when[32], labels[512] = "";
            size_t n = 0;
            fmt_time(json_integer_value(json_object_get(e, "updated_ms")), when, sizeof(when));
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(e, "labels"), k, v)
            {
                int w = snprintf(labels + n, sizeof(labels) - n, "%s%s=%lld", n ? " " : "", k,
                                 (long long)json_integer_value(v));
                if (w < 0 || (size_t)w >= sizeof(labels) - n)
                    break;
                n += (size_t)w;
            }
            printf("%-32s %7lld  %-20s  %s\n", json_string_value(json_object_get(e, "id")),
                   (long long)json_integer_value(json_object_get(e, "latest")), when, labels);
        }
    }
    json_decref(list);
    return 0;
}

static int cmd_show(ifq_config_t *cfg, int argc, char **argv)
{
    opts_t o = {0};
    int first = 0;
    o.vars = json_object();
    int bad = parse_opts(argc, argv, &o, &first);
    json_decref(o.vars);
    if (bad)
        return bad;
    if (argc - first != 1)
        return usage_error("show wants one ID");
    ifq_prompts_t *p = open_store(cfg);
    if (!p)
        return 3; /* Redis unreachable */
    char errstr[512];
    json_t *v = ifq_prompts_show(p, argv[first], o.version, o.label, errstr, sizeof(errstr));
    ifq_prompts_destroy(p);
    if (!v)
        return refused("show", strncmp(errstr, "redis", 5) == 0 ? IFQ_ERR_IO : IFQ_ERR_INVALID,
                       errstr);
    if (o.raw) {
        json_t *c = json_object_get(v, "content");
        fwrite(json_string_value(c), 1, json_string_length(c), stdout);
        size_t n = json_string_length(c);
        if (n && json_string_value(c)[n - 1] != '\n')
            fputc('\n', stdout);
    } else {
        print_json(v);
    }
    json_decref(v);
    return 0;
}

static int cmd_label(ifq_config_t *cfg, int argc, char **argv)
{
    if (argc != 5)
        return usage_error("label wants ID LABEL VERSION");
    int version = parse_version(argv[4]);
    if (!version)
        return usage_error("VERSION must be a positive integer, got '%s'", argv[4]);
    ifq_prompts_t *p = open_store(cfg);
    if (!p)
        return 3; /* Redis unreachable */
    char errstr[512];
    int rc = ifq_prompts_label(p, argv[2], argv[3], version, errstr, sizeof(errstr));
    ifq_prompts_destroy(p);
    if (rc)
        return refused("label", rc, errstr);
    fprintf(stderr, "inferq prompt: %s label %s -> version %d\n", argv[2], argv[3], version);
    return 0;
}

static int cmd_render(ifq_config_t *cfg, int argc, char **argv)
{
    opts_t o = {0};
    int first = 0;
    o.vars = json_object();
    int rc = parse_opts(argc, argv, &o, &first);
    if (rc)
        goto out;
    char errstr[512];
    if (o.file) {
        /* A local template file: no Redis at all, for writing templates. */
        if (first != argc || o.version || o.label) {
            rc = usage_error("--file renders a local file: no ID, --version or --label");
            goto out;
        }
        size_t len;
        char *text = read_file(o.file, &len);
        if (!text) {
            rc = 2;
            goto out;
        }
        json_t *tmpl = ifq_prompt_parse(text, len, errstr, sizeof(errstr));
        free(text);
        if (!tmpl) {
            rc = refused("render", IFQ_ERR_INVALID, errstr);
            goto out;
        }
        json_t *msgs, *params;
        int r = ifq_prompt_render(tmpl, o.vars, &msgs, &params, errstr, sizeof(errstr));
        json_decref(tmpl);
        if (r) {
            rc = refused("render", r, errstr);
            goto out;
        }
        json_object_set_new(params, "messages", msgs);
        json_t *outv = json_pack("{s:s,s:o}", "prompt", o.file, "body", params);
        print_json(outv);
        json_decref(outv);
        rc = 0;
        goto out;
    }
    if (argc - first != 1) {
        rc = usage_error("render wants one ID (or --file FILE)");
        goto out;
    }
    json_t *pf = json_pack("{s:s,s:O}", "id", argv[first], "variables", o.vars);
    if (o.version)
        json_object_set_new(pf, "version", json_integer(o.version));
    if (o.label)
        json_object_set_new(pf, "label", json_string(o.label));
    ifq_prompts_t *p = open_store(cfg);
    if (!p) {
        json_decref(pf);
        rc = 2;
        goto out;
    }
    json_t *body = json_object();
    char ref[IFQ_PROMPT_REF_SIZE];
    int r = ifq_prompts_render_request(p, pf, body, ref, sizeof(ref), errstr, sizeof(errstr));
    ifq_prompts_destroy(p);
    json_decref(pf);
    if (r) {
        json_decref(body);
        rc = refused("render", r, errstr);
        goto out;
    }
    json_t *outv = json_pack("{s:s,s:o}", "prompt", ref, "body", body);
    print_json(outv);
    json_decref(outv);
    rc = 0;
out:
    json_decref(o.vars);
    return rc;
}

int ifq_cli_prompt(ifq_config_t *cfg, int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing subcommand");
    const char *sub = argv[1];
    if (strcmp(sub, "push") == 0)
        return cmd_push(cfg, argc, argv);
    if (strcmp(sub, "list") == 0)
        return cmd_list(cfg, argc, argv);
    if (strcmp(sub, "show") == 0)
        return cmd_show(cfg, argc, argv);
    if (strcmp(sub, "label") == 0)
        return cmd_label(cfg, argc, argv);
    if (strcmp(sub, "render") == 0)
        return cmd_render(cfg, argc, argv);
    return usage_error("unknown subcommand '%s'", sub);
}
