namespace portcullis::signer {}
