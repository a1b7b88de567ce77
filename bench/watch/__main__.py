import sys

from bench.watch.run import main

sys.exit(main())
