// Compiles Asio's SSL implementation once (BOOST_ASIO_SEPARATE_COMPILATION; the rest of Asio is
// in proxy/base/asio_impl.cc).
#include <boost/asio/ssl/impl/src.hpp>
