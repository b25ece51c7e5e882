# Values every root of prod reads. Account ids are placeholders: replace them with yours.
environment     = "prod"
region          = "us-east-1"
organization_id = "o-exampleorg1"

accounts = {
  networking      = "130000000001"
  security        = "130000000002"
  shared_services = "130000000003"
}
