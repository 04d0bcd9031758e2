using System.Runtime.CompilerServices;

namespace ContinualMoE.Tests;

internal static class TestProcessSetup
{
    /// <summary>Tests compute as the commands do: MKL's kernels can only be chosen before its first matrix product
    /// (<see cref="MklCpuDispatch"/>), so the test host chooses them before any test runs, as every command does first.</summary>
    [ModuleInitializer]
    internal static void ChooseMklKernelsAsCommandsDo() => MklCpuDispatch.Configure();
}
