// The `mxgw` command line: serve, config check, certs, send.
#pragma once

namespace mxgw::cli {

/// Parses the command line and runs the subcommand. Returns the process exit status:
/// 0 success, 1 the operation failed, 2 bad usage or bad configuration.
int run(int argc, char** argv);

}  // namespace mxgw::cli
