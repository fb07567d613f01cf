// The mxgw executable: everything lives in the libraries; this only calls the command line.
#include "gateway/cli/commands.hpp"

int main(int argc, char** argv) {
  return mxgw::cli::run(argc, argv);
}
