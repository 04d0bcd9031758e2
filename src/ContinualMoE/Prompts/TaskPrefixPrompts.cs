using ContinualMoE.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

/// <summary>
/// HiDe-Prompt's task-specific prefix prompts (Wang et al., NeurIPS 2023): one prompt per task in each prompted block,
/// a prefix of <see cref="Length"/> keys and values given directly in the per-head projected space, initialised
/// uniform(-1, 1). Stored as one parameter [layers, 2 (key, value), tasks, L, H, d] like the official code.
///
/// As a provider it runs in one of two modes: <see cref="UseTask"/> (one prompt for the whole batch, optionally mixed with
/// the detached mean of the previous tasks' prompts: HiDe's prompt momentum) or <see cref="UsePerSample"/> (each sample's
/// own task prompt, gathered with index_select and laid out with permute, never reshape across batch and key/value).
/// An optional <see cref="NonLinearResidualGate"/> turns it into NoRGa.
/// </summary>
public sealed class TaskPrefixPrompts : nn.Module, IAttentionPrefixProvider
{
    private readonly Parameter prompts; // [layers, 2, T, L, H, d]
    private readonly Dictionary<int, int> layerOfBlock;
    private int? task;
    private double momentum;
    private Tensor? sampleTasks;

    public IReadOnlyList<int> Blocks { get; }
    public int Tasks { get; }
    public int Length { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public NonLinearResidualGate? Gate { get; }

    public TaskPrefixPrompts(IReadOnlyList<int> blocks, int tasks, int length, int heads, int headDim, NonLinearResidualGate? gate = null)
        : base(nameof(TaskPrefixPrompts))
    {
        Blocks = blocks;
        Tasks = tasks;
        Length = length;
        Heads = heads;
        HeadDim = headDim;
        Gate = gate;
        layerOfBlock = blocks.Select((b, i) => (b, i)).ToDictionary(x => x.b, x => x.i);
        prompts = new Parameter(empty(new long[] { blocks.Count, 2, tasks, length, heads, headDim }));
        using (no_grad()) nn.init.uniform_(prompts, -1, 1);
        register_parameter("prompts", prompts);
        if (gate is not null) register_module("gate", gate);
    }

    public Parameter Prompts => prompts;

    /// <summary>Parameters added by every task: one key and one value prefix per prompted layer.</summary>
    public long ParametersPerTask => (long)Blocks.Count * 2 * Length * Heads * HeadDim;

    /// <summary>Every sample uses task <paramref name="taskIndex"/>'s prompt; with <paramref name="promptMomentum"/> m &gt; 0 and
    /// earlier tasks, the prompt is (1 - m) P_t + m mean(P_&lt;t) with the mean detached.</summary>
    public void UseTask(int taskIndex, double promptMomentum = 0)
    {
        task = taskIndex;
        momentum = promptMomentum;
        sampleTasks = null;
    }

    /// <summary>Sample b uses the prompt of task <paramref name="tasks"/>[b] (int64 [B]). The tensor must outlive the forward pass.</summary>
    public void UsePerSample(Tensor tasks)
    {
        task = null;
        sampleTasks = tasks;
    }

    /// <summary>Task t's prompt as trained: [layers, 2, L, H, d], with the momentum mix when it applies.</summary>
    public Tensor TaskPrompt(int taskIndex, double promptMomentum)
    {
        var own = prompts.select(2, taskIndex);
        if (promptMomentum <= 0 || taskIndex == 0) return own;
        Tensor previous;
        using (no_grad()) previous = prompts.narrow(2, 0, taskIndex).mean([2]).detach();
        return own * (1 - promptMomentum) + previous * promptMomentum;
    }

    /// <summary>Writes the momentum mix into P_t (after the task, as the official code does).</summary>
    public void CommitMomentum(int taskIndex, double promptMomentum)
    {
        if (promptMomentum <= 0 || taskIndex == 0) return;
        using var noGrad = no_grad();
        using var mixed = TaskPrompt(taskIndex, promptMomentum).detach().clone();
        prompts.select(2, taskIndex).copy_(mixed);
    }

    /// <summary>Initialises task t's prompt as a copy of task t-1's (official: shared prompt pool transfer).</summary>
    public void CopyFromPrevious(int taskIndex)
    {
        if (taskIndex == 0) return;
        using var noGrad = no_grad();
        prompts.select(2, taskIndex).copy_(prompts.select(2, taskIndex - 1));
    }

    public AttentionPrefix? ForBlock(int blockIndex, Tensor queries)
    {
        if (!layerOfBlock.TryGetValue(blockIndex, out var layer)) return null;
        Tensor keys, values;
        if (sampleTasks is not null)
        {
            // [2, T, L, H, d] -> gather tasks -> [2, B, L, H, d] -> permute -> [2, B, H, L, d]
            var perSample = prompts.select(0, layer).index_select(1, sampleTasks).permute(0, 1, 3, 2, 4);
            keys = perSample.select(0, 0);
            values = perSample.select(0, 1);
        }
        else if (task is int t)
        {
            // [2, L, H, d] -> [2, H, L, d] -> [2, 1, H, L, d]
            var shared = TaskPrompt(t, momentum).select(0, layer).permute(0, 2, 1, 3).unsqueeze(1);
            keys = shared.select(0, 0);
            values = shared.select(0, 1);
        }
        else
        {
            throw new InvalidOperationException("TaskPrefixPrompts: call UseTask or UsePerSample before the forward pass");
        }
        return new AttentionPrefix { Keys = keys, Values = values, LogitTransform = Gate?.For(layer) };
    }
}
