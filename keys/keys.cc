// Placeholder translation unit until the key module lands.
namespace portcullis::keys {}
