namespace ContinualMoE.Training;

/// <summary>Implemented by learners whose low-rank experts grow with tasks, so runs can plot the growth and the split of
/// components between shared and task-specific experts.</summary>
public interface IAdapterGrowth
{
    /// <summary>Adapter parameters in use after each finished task.</summary>
    IReadOnlyList<long> ParametersAfterTask { get; }

    /// <summary>What one task's own expert of the same capacity would cost (the linear-growth reference).</summary>
    long OneTaskExpertParameters { get; }

    /// <summary>Per adapted layer (e.g. "blocks.3.attn.q"): rank-1 components in the shared experts and in the unique ones.</summary>
    IReadOnlyList<(string Site, int Shared, int Unique)> ComponentsPerSite { get; }
}
