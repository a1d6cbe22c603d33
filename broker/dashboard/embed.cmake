# Turns the dashboard page (IFQ_IN) into a C file (IFQ_OUT) defining
# ifq_dashboard_html[] and ifq_dashboard_html_len. Run by broker/CMakeLists.txt.
file(READ "${IFQ_IN}" hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR nbytes "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n" bytes "${bytes}")
file(WRITE "${IFQ_OUT}"
  "/* Generated from broker/dashboard/dashboard.html by embed.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "const unsigned char ifq_dashboard_html[] = {\n${bytes}0x00};\n"
  "const size_t ifq_dashboard_html_len = ${nbytes};\n")
