using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE;

/// <summary>
/// TorchSharp's <c>Module.to</c> replaces every registered parameter and buffer that has to be copied (disposing the
/// original) and rebinds only a field whose name is the registered name. Tensors a module keeps in an array or list are
/// registered as <c>prefix0, prefix1, ...</c> and must be fetched again after the move: a module that holds such a
/// collection overrides <c>_toEpilog</c>, calls the base and then one of these.
/// </summary>
public static class RegisteredTensors
{
    public static void RebindBuffers(this nn.Module module, IList<Tensor> buffers, string prefix)
    {
        for (var i = 0; i < buffers.Count; i++)
            buffers[i] = module.get_buffer($"{prefix}{i}") ?? throw new InvalidOperationException($"{module.GetName()} has no buffer '{prefix}{i}'");
    }

    public static void RebindParameters(this nn.Module module, IList<Parameter> parameters, string prefix)
    {
        for (var i = 0; i < parameters.Count; i++)
            parameters[i] = module.get_parameter($"{prefix}{i}") ?? throw new InvalidOperationException($"{module.GetName()} has no parameter '{prefix}{i}'");
    }
}
