"""The enterprise portal: the public policy supermarket, enterprise sign-in, standings (我的政策) and
the missing data enterprises supply with evidence. Built on the payouts core; the money flow never
imports it."""
