#!/bin/sh
# A pod's process (stand-in): a child that outlives its parent unless killed itself.
sleep 100000 &
while :; do sleep 1; done
