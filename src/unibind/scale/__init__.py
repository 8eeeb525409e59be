"""Scale-out: plans and engines for collections beyond one machine."""
