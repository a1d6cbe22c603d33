# Embeds the injection model's weights into libinferq, so no runtime file is
# needed (guardrails.model_path can still point at another file). Run by
# lib/CMakeLists.txt at build time:
#   cmake -DIFQ_MODEL_FILE=data/guard/injection_model.bin -DIFQ_OUT=x.c -P embed_model.cmake
file(READ "${IFQ_MODEL_FILE}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR nbytes "${hexlen} / 2")
# 32 bytes per line keeps the generated file readable and the regex cheap.
string(REGEX REPLACE "([0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])" "\\1\n" hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${IFQ_OUT}"
  "/* Generated from data/guard/injection_model.bin by data/guard/embed_model.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "const unsigned char ifq_guard_model_blob[] = {\n${bytes}0};\n"
  "const size_t ifq_guard_model_blob_len = ${nbytes};\n")
