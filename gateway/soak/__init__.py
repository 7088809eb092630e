"""`linebridge soak`: a time-compressed endurance run of the whole appliance, on loopback.

The package owns the soak harness: several simulated machines (`plants`), a
Modbus link that can turn to garbage (`garbage`), the child processes and the
faults done to them (`procs`), the seeded fault schedule (`schedule`), a
read-only look into the gateway's store (`probe`), the auditors that compare
the plant's ground truth with Odoo and the broker (`audit`), and the run that
ties them together and prints one JSON line (`runner`). It knows the gateway
only from outside: its configuration file, its command line, its log lines and
its store opened read-only.
"""
