#include "euphoria/cli/app.hpp"

int main(int argc, char** argv) { return euphoria::cli::run(argc, argv); }
