// Tests share libtorch's global state (the default random generator, thread pool), so a test that seeds torch must not
// have another test drawing from the same generator at the same time: run test classes one after another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
