// The `mxgw` command line: serve, config check, certs, send.
#pragma once

namespace mxgw::cli {

/// Parses the command line and runs the subcommand. Returns the process exit status:
/// 0 success, 1 the operation failed (or its result could not be written to standard output),
/// 2 bad usage, an input that cannot be read or bad configuration. `audit verify` and `translate`
/// keep 1 for their verdict (not intact; the message refused) and fail with 2.
int run(int argc, char** argv);

}  // namespace mxgw::cli
