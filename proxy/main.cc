// outrigger: see proxy/cli/cli.h for the commands.
#include "proxy/cli/cli.h"

int main(int argc, char** argv) { return outrigger::cli::main(argc, argv); }
