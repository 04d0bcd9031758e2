using TorchSharp;

namespace ContinualMoE.Checkpoints;

/// <summary>The safetensors dtype names this library reads and writes, and their torch equivalents.</summary>
internal static class SafeTensorsDType
{
    private static readonly (string Name, torch.ScalarType Type, int Size)[] Known =
    {
        ("F64", torch.ScalarType.Float64, 8),
        ("F32", torch.ScalarType.Float32, 4),
        ("F16", torch.ScalarType.Float16, 2),
        ("BF16", torch.ScalarType.BFloat16, 2),
        ("I64", torch.ScalarType.Int64, 8),
        ("I32", torch.ScalarType.Int32, 4),
        ("I16", torch.ScalarType.Int16, 2),
        ("I8", torch.ScalarType.Int8, 1),
        ("U8", torch.ScalarType.Byte, 1),
        ("BOOL", torch.ScalarType.Bool, 1),
    };

    public static string SupportedNames => string.Join(", ", Known.Select(k => k.Name));

    public static bool TryParse(string name, out torch.ScalarType type, out int size)
    {
        foreach (var k in Known)
        {
            if (k.Name == name) { type = k.Type; size = k.Size; return true; }
        }
        type = default;
        size = 0;
        return false;
    }

    public static bool TryGetName(torch.ScalarType type, out string name)
    {
        foreach (var k in Known)
        {
            if (k.Type == type) { name = k.Name; return true; }
        }
        name = "";
        return false;
    }
}
