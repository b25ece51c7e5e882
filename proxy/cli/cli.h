// The command line: `outrigger run | validate | reverse-proxy | version`, each with --help.
#pragma once

namespace outrigger::cli {

int main(int argc, char** argv);

}  // namespace outrigger::cli
