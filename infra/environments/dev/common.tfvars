# Values every root of dev reads. Account ids are placeholders: replace them with yours.
environment     = "dev"
region          = "us-east-1"
organization_id = "o-exampleorg1"

accounts = {
  networking      = "110000000001"
  security        = "110000000002"
  shared_services = "110000000003"
}
