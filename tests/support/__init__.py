"""What the tests share, one module per concept.

* `stack`: a hub assembled in the test process (the API on a loopback port, dispatchers on a
  database of the test's own), with whatever deliverers the test hands in;
* `processes`: the hub as real `hub worker` processes, with the API served in the test process
  to set data up the way a client would;
* `sinks`: where deliveries land: loopback webhook endpoints that record what reaches them, and
  a scripted deliverer that stands in for one;
* `queue`: read-only looks at the jobs and logs tables;
* `waiting`: `eventually`, the one way a test waits for something to hold.
"""
